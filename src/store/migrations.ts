// Versioned migrations: plain SQL files named NNN_name.sql, one folder per engine under
// src/store/migrations/. The files ship with the package and are read at run time.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function migrationsDir(engine: 'sqlite' | 'postgres'): string {
  return join(packageRoot, 'src', 'store', 'migrations', engine);
}

export function loadMigrations(engine: 'sqlite' | 'postgres'): Migration[] {
  const dir = migrationsDir(engine);
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = /^(\d+)_([A-Za-z0-9_]+)\.sql$/.exec(file);
    if (!m) continue;
    out.push({ version: Number(m[1]), name: m[2]!, sql: readFileSync(join(dir, file), 'utf8') });
  }
  out.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations in ${dir} must be numbered 1..N without gaps (found ${m.version} at position ${i + 1})`);
  });
  return out;
}

/**
 * The oldest schema this build's save mode runs against. Expand/contract keeps it at latest - 1
 * (a build works with the schema before its newest migration); a build whose code needs its
 * newest migration raises it, and then save mode waits for `intake migrate` (the rolling-upgrade
 * runbook migrates before nodes go back to save mode, so this costs no downtime).
 * v5 (the cancels table: a cancel of a request not in the database yet waits there, and the
 * drain's insert must honour it) is needed by this build, and so is v6 (the books: every insert
 * counts its rows in requests_inserted, every drain notes its segment in drained_segments).
 */
export const MIN_SCHEMA = 6;
