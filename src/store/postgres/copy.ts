// Drained requests reach PostgreSQL by COPY into a per-connection staging table, then one
// INSERT … SELECT with insert-if-absent. COPY's text format costs the driver a string per row
// where array parameters cost it a multi-megabyte array literal per column (twice the rows/s
// measured: docs/benchmarks.md).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { RequestRecord } from '../../spool/records.js';
import { sql } from './sql.js';
import { cancelSql } from './cancels.js';
import { booksSql } from './books.js';

/** Connections whose session already has the staging table (a failed transaction's client is discarded, never reused). */
const staged = new WeakSet<pg.PoolClient>();

const SPECIAL = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** One field of COPY's text format: \N for null; backslash, tab, newline and CR escaped. */
export function copyField(v: string | number | null): string {
  if (v === null) return '\\N';
  if (typeof v === 'number') return String(v);
  return v.replace(SPECIAL, (c) => ESCAPES[c]!);
}

function* copyText(records: RequestRecord[]): Generator<string> {
  let buf = '';
  for (const r of records) {
    buf +=
      `${copyField(r.id)}\t${copyField(r.tenant)}\t${copyField(r.idempotencyKey)}\t${r.receivedAt}\t${copyField(r.node)}\t` +
      `${copyField(r.callbackUrl)}\t${copyField(r.lane)}\t${copyField(r.notBefore)}\t${copyField(r.payload)}\t${copyField(r.metadata)}\n`;
    if (buf.length >= 1 << 20) {
      yield buf;
      buf = '';
    }
  }
  if (buf.length > 0) yield buf;
}

/** Inside the caller's transaction: stage `records` and insert the new ones; returns how many were new. */
export async function insertByCopy(client: pg.PoolClient, records: RequestRecord[]): Promise<number> {
  if (!staged.has(client)) {
    await client.query(sql.createStaging);
    staged.add(client);
  }
  // Shared: drains run side by side; a cancel leaving a tombstone waits for them (cancels.ts).
  await client.query(cancelSql.lockShared);
  await pipeline(Readable.from(copyText(records)), client.query(copyFrom(sql.copyStaging)));
  const n = (await client.query(sql.insertFromStaging)).rowCount ?? 0;
  await client.query(cancelSql.honourTombstones);
  // The books: the new rows counted in their own transaction (006_books.sql).
  if (n > 0) await client.query(booksSql.countInserted, [n]);
  return n;
}
