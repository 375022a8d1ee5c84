// A throwaway PostgreSQL for the benchmark: test/helpers/postgres.ts (initdb into a temp dir,
// loopback port, fsync on), plus what a benchmark needs on top: the postmaster's pid (for its
// CPU, backends included) and a synchronous cleanup hook, so the server and its data dir go away
// even when the benchmark crashes or is interrupted before close().
import { readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { openStore } from '../src/store/open.js';
import { startPostgres, type PgServer } from '../test/helpers/postgres.js';
import { childPids, onCleanup, say } from './common.js';

export interface BenchPg {
  server: PgServer;
  /** The postmaster (its backends are its children), or undefined when it was not found. */
  pid: number | undefined;
  /** A fresh database with the schema migrated (openStore + migrate), as its URL. */
  freshDb(): Promise<string>;
  close(): Promise<void>;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Our child `postgres -D <data> -p <port>`: its pid and data dir. */
function findPostmaster(port: number): { pid: number; data: string } | null {
  for (const pid of childPids(process.pid)) {
    const a = cmdline(pid);
    const p = a.indexOf('-p');
    const d = a.indexOf('-D');
    if (a[0]?.endsWith('/postgres') && p >= 0 && a[p + 1] === String(port) && d >= 0 && a[d + 1]) return { pid, data: a[d + 1]! };
  }
  return null;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export async function startBenchPg(): Promise<BenchPg> {
  const t0 = performance.now();
  const server = await startPostgres();
  const pm = findPostmaster(server.port);
  // Crash path: immediate shutdown (SIGQUIT), SIGKILL if it lingers, then the temp dir.
  const unhook = onCleanup(() => {
    if (pm) {
      if (alive(pm.pid)) process.kill(pm.pid, 'SIGQUIT');
      for (let i = 0; i < 100 && alive(pm.pid); i++) sleepSync(50);
      if (alive(pm.pid)) process.kill(pm.pid, 'SIGKILL');
      rmSync(dirname(pm.data), { recursive: true, force: true });
    }
  });
  if (!pm) say('postgres: could not find the postmaster among our children; its CPU is not measured and a crash may leave it running');
  say(`postgres: started on port ${server.port} in ${Math.round(performance.now() - t0)} ms`);
  return {
    server,
    pid: pm?.pid,
    async freshDb() {
      const url = await server.createDatabase();
      const store = await openStore(url);
      try {
        await store.migrate();
      } finally {
        await store.close();
      }
      return url;
    },
    async close() {
      try {
        await server.close();
      } finally {
        unhook();
        if (pm && alive(pm.pid)) process.kill(pm.pid, 'SIGKILL');
      }
    },
  };
}
