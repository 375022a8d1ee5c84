// The Grafana dashboard (ops/grafana-intake.json) queries only metrics a node exports, and
// docs/operations.md lists every metric a node exports: a renamed metric breaks this test, not
// the operators' dashboard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMetrics } from '../../src/metrics.js';
import { repoRoot } from '../helpers/daemon.js';

/** Every series name a node's /metrics can show: histograms as their _bucket, _sum and _count. */
async function exported(): Promise<{ names: Set<string>; own: string[] }> {
  const metrics = await createMetrics({ defaults: true }).registry.getMetricsAsJSON();
  const names = new Set<string>();
  for (const m of metrics) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return { names, own: metrics.map((m) => m.name).filter((n) => !n.startsWith('intake_process_')) };
}

/** Every string under `v` whose key is `key`. */
function stringsAt(v: unknown, key: string, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) stringsAt(x, key, out);
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) typeof x === 'string' && k === key ? out.push(x) : stringsAt(x, key, out);
  return out;
}

test('every metric the Grafana dashboard queries is one a node exports', async () => {
  const dash = JSON.parse(readFileSync(join(repoRoot, 'ops', 'grafana-intake.json'), 'utf8')) as unknown;
  const queries = [...stringsAt(dash, 'expr'), ...stringsAt(dash, 'query')];
  assert.ok(queries.length >= 20, `only ${queries.length} queries found`);
  const { names } = await exported();
  const used = new Set(queries.flatMap((q) => q.match(/\bintake_[a-z0-9_]+/g) ?? []));
  const unknown = [...used].filter((n) => !names.has(n));
  console.log(`grafana: ${queries.length} queries, ${used.size} metric names, unknown: ${unknown.length}`);
  assert.deepEqual(unknown, [], 'queried by ops/grafana-intake.json but not exported by a node');
});

test('docs/operations.md lists every metric a node exports', async () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const { own } = await exported();
  assert.deepEqual(own.filter((n) => !doc.includes(`\`${n}`)), [], 'exported but not in the metrics table of docs/operations.md');
});
