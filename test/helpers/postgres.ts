// A throwaway PostgreSQL for tests, started from the system's binaries (Debian package
// `postgresql`): initdb into a temp dir as a non-root user, loopback only, fsync on.
// Missing binaries fail the test with the package to install; nothing is mocked.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './net.js';

export interface PgServer {
  port: number;
  /** URL of the `postgres` maintenance database. */
  adminUrl: string;
  /** A fresh, empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stop at once (like a crash or a pulled cable): `pg_ctl stop -m immediate`. */
  stopImmediate(): Promise<void>;
  /** Start again on the same data directory and port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export function findPgBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'postgres'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) {
    throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install the Debian package `postgresql` (apt-get install -y postgresql)');
  }
  return join(base, versions[0]!, 'bin');
}

/** initdb refuses to run as root: run the server as the `postgres` user (or nobody). */
function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  for (const name of ['postgres', 'nobody']) {
    const u = spawnSync('id', ['-u', name], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
    if (u.status === 0 && g.status === 0) return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  }
  throw new Error('running as root, but neither a postgres nor a nobody user exists to run PostgreSQL as');
}

export async function startPostgres(): Promise<PgServer> {
  const bin = findPgBin();
  const dir = mkdtempSync(join(tmpdir(), 'intake-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  const user = serverUser();
  if (user) chownSync(dir, user.uid, user.gid);
  const asUser = user ? { uid: user.uid, gid: user.gid } : {};
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-instructions'], {
    ...asUser,
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C' },
  });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}${init.stdout}`);
  const port = await freePort();
  let proc: ChildProcess | null = null;
  let log = '';

  const start = async () => {
    proc = spawn(
      join(bin, 'postgres'),
      ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=on', '-c', 'max_connections=200', '-c', 'shared_buffers=128MB'],
      { ...asUser, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout!.on('data', (d) => (log += d));
    proc.stderr!.on('data', (d) => (log += d));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 1000 });
      try {
        await c.connect();
        await c.end();
        return;
      } catch {
        await c.end().catch(() => undefined);
        if (proc.exitCode !== null) throw new Error(`postgres exited with ${proc.exitCode}:\n${log}`);
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 30 s:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const stop = async (mode: 'immediate' | 'fast') => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    spawnSync(join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', mode, '-w'], { ...asUser, encoding: 'utf8' });
    await exited;
  };
  await start();
  let n = 0;
  return {
    port,
    adminUrl,
    async createDatabase(name = `intake_${process.pid}_${++n}`) {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stopImmediate: () => stop('immediate'),
    restart: start,
    async close() {
      await stop('fast');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One throwaway PostgreSQL for the tests of a file: started before them, closed after them.
 * Read `.server` inside the tests (it is set once the `before` hook has run).
 */
export function postgresForTests(): { readonly server: PgServer } {
  const held: { server: PgServer | null } = { server: null };
  before(async () => {
    held.server = await startPostgres();
  });
  after(async () => {
    await held.server?.close();
  });
  return {
    get server(): PgServer {
      if (!held.server) throw new Error('PostgreSQL is not started yet: use .server inside a test');
      return held.server;
    },
  };
}
