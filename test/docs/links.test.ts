// Every relative link in README.md and docs/ resolves to a file of the repository (and an
// anchor, where one is given, to a heading of that file), and nothing points outside it.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/daemon.js';

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N} -]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(file: string): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^#{1,6}\s+(.*)$/.exec(line);
    if (m) out.add(anchor(m[1]!));
  }
  return out;
}

test('every relative link in README.md and docs/ resolves inside the repository', () => {
  const files = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const problems: string[] = [];
  let checked = 0;
  for (const f of files) {
    const path = join(repoRoot, f);
    const text = readFileSync(path, 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target)) continue; // http(s), mailto: not ours to check
      checked++;
      const [p, hash] = target.split('#') as [string, string | undefined];
      const dest = p === '' ? path : resolve(dirname(path), p);
      const rel = relative(repoRoot, dest);
      if (rel.startsWith('..')) problems.push(`${f}: ${target} points outside the repository`);
      else if (!existsSync(dest)) problems.push(`${f}: ${target} does not exist`);
      else if (hash && dest.endsWith('.md') && !anchorsOf(dest).has(hash)) problems.push(`${f}: ${target} names no heading of ${rel}`);
    }
  }
  assert.ok(checked > 10, `only ${checked} links found: the scan is broken`);
  assert.deepEqual(problems, []);
});
