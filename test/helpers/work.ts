// What tests of the processing API share: a fresh database on either engine, a node that
// serves the work API, requests submitted and waited for until they are in the database, and
// a callback receiver on 127.0.0.1 (completing a request sends its callback: to this receiver,
// never anywhere else).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { runCli, startDaemon, type Daemon } from './daemon.js';
import { get, post, waitFor } from './http.js';
import { startPostgres, type PgServer } from './postgres.js';
import { tempDir } from './tmp.js';

export type Engine = 'sqlite' | 'postgres';
export const ENGINES: readonly Engine[] = ['sqlite', 'postgres'];

export interface TestDb {
  engine: Engine;
  /** The `--db` URL. */
  url: string;
  spool: string;
}

/** Fresh databases under `dir`; PostgreSQL is started on first use (and fails loudly when missing). */
export function testDatabases(dir: string): { fresh(engine: Engine): Promise<TestDb>; close(): Promise<void> } {
  let server: PgServer | null = null;
  let seq = 0;
  return {
    async fresh(engine) {
      const spool = join(dir, `spool${++seq}`);
      if (engine === 'sqlite') return { engine, url: `sqlite:${join(dir, `work${seq}.db`)}`, spool };
      server ??= await startPostgres();
      const url = await server.createDatabase();
      const m = await runCli(['migrate', '--db', url]);
      assert.equal(m.code, 0, m.stderr);
      return { engine, url, spool };
    },
    async close() {
      await server?.close();
    },
  };
}

export interface HookReceiver {
  url: string;
  /** webhook-id of every attempt received, in order. */
  received: string[];
  close(): Promise<void>;
}

/** A callback receiver that answers every attempt 204. */
export async function startHookReceiver(): Promise<HookReceiver> {
  const received: string[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push(String(req.headers['webhook-id']));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Environment of a node whose callbacks may reach the receiver on 127.0.0.1. */
export const WORK_ENV = {
  INTAKE_CALLBACK_ALLOW_CIDRS: '127.0.0.1/32',
  INTAKE_CALLBACK_POLL_MS: '100',
  INTAKE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
};
/** Short seal and scan times, so submitted requests are claimable within a fraction of a second. */
export const WORK_ARGS = ['--seal-after-ms', '100', '--scan-interval-ms', '100', '--lock-stale-ms', '2000'];

/** A node in mode both on `db` (given a minute to start: a loaded CI machine can take more than the default 20 s). */
export function startWorkNode(db: TestDb, nodeId?: string): Promise<Daemon> {
  return startDaemon({ spool: db.spool, db: db.url, args: WORK_ARGS, env: WORK_ENV, startTimeoutMs: 60000, ...(nodeId ? { nodeId } : {}) });
}

/** An item of a claim's answer. */
export interface ClaimedItem {
  id: string;
  lease_token: string;
  lease_expires_at: string;
  attempts: number;
}

/** Submit `n` requests in `lane` (a lane of their own), wait until they are stored, claim them all; items in claim order (oldest first). */
export async function claimAll(d: Daemon, callbackUrl: string, n: number, lane: string, leaseSeconds = 60): Promise<ClaimedItem[]> {
  const ids = await submitAndStore(d, callbackUrl, n, { lane });
  const c = await post(`${d.url}/v1/work/claim`, { lane, limit: n, lease_seconds: leaseSeconds });
  assert.equal(c.status, 200, JSON.stringify(c.body));
  assert.deepEqual(c.body.items.map((x: ClaimedItem) => x.id), ids, 'the claim got every request of the lane, oldest first');
  return c.body.items as ClaimedItem[];
}

/**
 * Submit `n` requests (`concurrency` at a time) and wait until each is in the database; returns
 * their ids in submission order. `extra` adds fields to every request (lane, metadata, ...).
 */
export async function submitAndStore(d: Daemon, callbackUrl: string, n: number, extra: Record<string, unknown> = {}, concurrency = 1): Promise<string[]> {
  const ids: string[] = new Array<string>(n);
  let next = 0;
  const each = async (work: (i: number) => Promise<void>) => {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) await work(next++);
      }),
    );
    next = 0;
  };
  await each(async (i) => {
    const r = await post(`${d.url}/v1/requests`, { payload: { i, tag: randomUUID() }, callback_url: callbackUrl, metadata: { i }, ...extra });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    ids[i] = r.body.id;
  });
  await each(async (i) => {
    await waitFor(`request ${ids[i]} in the database`, async () => (await get(`${d.url}/v1/requests/${ids[i]}`)).status === 200, 20000, 50);
  });
  return ids;
}

/** What a file of processing API tests shares; its before and after hooks are registered by workTestSetup. */
export interface WorkTestSetup {
  tmp: { path: string; cleanup(): void };
  dbs: ReturnType<typeof testDatabases>;
  /** Daemons to SIGKILL after the file's tests (push every one started). */
  daemons: Daemon[];
  /** The callback receiver (read it inside tests: it starts in the before hook). */
  readonly hooks: HookReceiver;
}

/** A temp dir, fresh databases, a callback receiver, and the cleanup of all of them and of the daemons, for one test file. */
export function workTestSetup(prefix: string): WorkTestSetup {
  const tmp = tempDir(prefix);
  const dbs = testDatabases(tmp.path);
  const daemons: Daemon[] = [];
  let hooks: HookReceiver | null = null;
  before(async () => {
    hooks = await startHookReceiver();
  });
  after(async () => {
    await Promise.all(daemons.map((d) => d.kill('SIGKILL')));
    await hooks?.close();
    await dbs.close();
    tmp.cleanup();
  });
  return {
    tmp,
    dbs,
    daemons,
    get hooks(): HookReceiver {
      if (!hooks) throw new Error('the callback receiver is not started yet: use .hooks inside a test');
      return hooks;
    },
  };
}
