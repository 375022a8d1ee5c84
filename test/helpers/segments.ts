// Hand-made sealed segments for drain tests: a complete file under a node's folder, renamed to
// its .seg name the way a writer seals one, with the offset of every frame for checking what
// went to quarantine/.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { CURRENT_VERSION, encodeHeader, encodeRecord, RecordKind } from '../../src/spool/format.js';
import type { QuarantineReport } from '../../src/spool/quarantine.js';
import { encodeRequestRecord, type RequestRecord } from '../../src/spool/records.js';

/** A valid request record from `node`; `payload` defaults to a small object numbered i. */
export function testRequest(i: number, node: string, payload: unknown = { n: i, text: `payload number ${i}` }): RequestRecord {
  return {
    id: uuidv7(),
    tenant: 'default',
    idempotencyKey: null,
    receivedAt: 1_720_000_000_000 + i,
    node,
    callbackUrl: `https://example.com/hook/${i}`,
    lane: null,
    notBefore: null,
    payload: JSON.stringify(payload),
    metadata: JSON.stringify({ i }),
  };
}

export const requestFrame = (r: RequestRecord): Buffer => encodeRecord(RecordKind.request, encodeRequestRecord(r));

export interface Dropped {
  node: string;
  segment: string;
  path: string;
  bytes: Buffer;
  /** Offset of each frame in the file. */
  offsets: number[];
}

/** Write a sealed segment of `frames` (or `raw` bytes) into `dir`, the folder of node `node`. */
export function dropSegment(dir: string, node: string, frames: Buffer[], opts: { version?: number; raw?: Buffer } = {}): Dropped {
  const segment = uuidv7();
  const header = encodeHeader({ node, segment, createdAt: Date.now() }, opts.version ?? CURRENT_VERSION);
  const offsets: number[] = [];
  let at = header.length;
  for (const f of frames) {
    offsets.push(at);
    at += f.length;
  }
  const bytes = opts.raw ?? Buffer.concat([header, ...frames]);
  const path = join(dir, `${segment}.seg`);
  writeFileSync(join(dir, `${segment}.tmp`), bytes);
  renameSync(join(dir, `${segment}.tmp`), path);
  return { node, segment, path, bytes, offsets };
}

/** Names in `<spool>/quarantine/` that came from segment `f`, sorted. */
export function quarantinedOf(spool: string, f: Dropped): string[] {
  const dir = join(spool, 'quarantine');
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith(`${f.segment}.seg@`)).sort() : [];
}

/**
 * The report of the range of `f` quarantined at `offset`, once checked: the .bin holds exactly
 * those bytes of the file, and the .json says where they came from.
 */
export function quarantinedRange(spool: string, f: Dropped, offset: number, length: number): QuarantineReport {
  const stem = join(spool, 'quarantine', `${f.segment}.seg@${offset}`);
  assert.ok(existsSync(`${stem}.bin`), `${stem}.bin in quarantine (have ${JSON.stringify(quarantinedOf(spool, f))})`);
  assert.ok(readFileSync(`${stem}.bin`).equals(f.bytes.subarray(offset, offset + length)), `${stem}.bin holds the bytes of the file at ${offset}`);
  const r = JSON.parse(readFileSync(`${stem}.json`, 'utf8')) as QuarantineReport;
  assert.equal(r.source, `nodes/${f.node}/${f.segment}.seg`);
  assert.equal(r.offset, offset);
  assert.equal(r.length, length);
  return r;
}
