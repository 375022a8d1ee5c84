// Damaged bytes never reach the database and are never silently dropped: they are copied here,
// with a JSON report saying where they came from and why, for an operator to look at.
import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { quarantineDir } from './layout.js';
import { fsyncDir, mkdirDurable, writeFileDurable, writeFileSynced } from './fsutil.js';

/** The kind of a whole record in quarantine, when known (docs/spool-format.md, "Record kinds"). */
export type RecordKindName = 'request' | 'cancel' | 'callbackOutcome';

export interface QuarantineReport {
  /** The file the bytes came from, relative to the spool root when possible. */
  source: string;
  offset: number;
  length: number;
  reason: string;
  detail?: string;
  /** The database's error code, when the database refused the record (reason db-refused). */
  dbCode?: string;
  /**
   * The record's kind when the whole record is known (db-refused, idempotency-conflict):
   * `intake verify` counts quarantined requests by it. Absent for damage, whose content is unknown.
   */
  kind?: RecordKindName;
  quarantinedAt: string;
  quarantinedBy: string;
}

/**
 * Copy a byte range of a spool file to quarantine/. The name is derived from the source and
 * offset, so doing it again after a crash rewrites the same files instead of adding new ones.
 */
export async function quarantineBytes(
  root: string,
  source: string,
  bytes: Buffer,
  info: { offset: number; reason: string; detail?: string; dbCode?: string; kind?: RecordKindName; by: string },
): Promise<string> {
  const dir = quarantineDir(root);
  await mkdirDurable(dir);
  const stem = join(dir, `${basename(source)}@${info.offset}`);
  await writeFileSynced(`${stem}.bin`, bytes);
  const report: QuarantineReport = {
    source: relative(root, source),
    offset: info.offset,
    length: bytes.length,
    reason: info.reason,
    ...(info.detail ? { detail: info.detail } : {}),
    ...(info.dbCode ? { dbCode: info.dbCode } : {}),
    ...(info.kind ? { kind: info.kind } : {}),
    quarantinedAt: new Date().toISOString(),
    quarantinedBy: info.by,
  };
  // The report appears whole or not at all (a reader, or `intake verify`, never sees half of
  // one); its rename's directory fsync also makes the .bin's name durable.
  await writeFileDurable(`${stem}.json`, Buffer.from(JSON.stringify(report, null, 2) + '\n'));
  return `${stem}.bin`;
}

/** Move a whole file into quarantine/ (a file whose header is damaged), with a report. */
export async function quarantineFile(root: string, source: string, info: { reason: string; detail?: string; by: string }): Promise<string> {
  const dir = quarantineDir(root);
  await mkdirDurable(dir);
  const st = await fsp.stat(source);
  const dest = join(dir, `${basename(source)}@file`);
  const report: QuarantineReport = {
    source: relative(root, source),
    offset: 0,
    length: st.size,
    reason: info.reason,
    ...(info.detail ? { detail: info.detail } : {}),
    quarantinedAt: new Date().toISOString(),
    quarantinedBy: info.by,
  };
  await writeFileDurable(`${dest}.json`, Buffer.from(JSON.stringify(report, null, 2) + '\n'));
  await fsp.rename(source, dest);
  await fsyncDir(dir);
  await fsyncDir(source.slice(0, source.lastIndexOf('/')) || '/');
  return dest;
}

function relative(root: string, path: string): string {
  const prefix = root.endsWith('/') ? root : root + '/';
  return path.startsWith(prefix) ? path.slice(prefix.length) : path;
}
