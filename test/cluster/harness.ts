// A real cluster for end-to-end tests: intake nodes on fixed 127.0.0.1 ports sharing one spool
// root and one throwaway PostgreSQL, behind a real HAProxy; a paced client with Idempotency-Keys
// that retries like a well-made one; a second build of intake with one more migration.
// Nothing is mocked. close() kills every process it knows of (nodes, HAProxy, PostgreSQL).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, cpSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import pg from 'pg';
import { repoRoot } from '../helpers/daemon.js';
import { freePort, ROLE_BACKENDS, startHaproxy, type Haproxy, type HaproxyStat } from '../helpers/haproxy.js';
import { sleep } from '../helpers/http.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { localSpoolDirs, type SpoolDirs } from '../helpers/gluster.js';
import { segmentFiles, type KeyedRow } from '../chaos/checker.js';
import type { Mode } from '../../src/config.js';

/** Flags every test node gets: short cluster timings so the tests do not wait for defaults. */
export const NODE_FLAGS = [
  '--heartbeat-ms', '200',
  '--dead-after-ms', '1500',
  '--lock-stale-ms', '2000',
  '--seal-after-ms', '200',
  '--scan-interval-ms', '100',
  '--stop-idle-ms', '600',
  '--log-level', 'info',
];

/**
 * For the heaviest runs of the suite (kill -9 and rolling upgrade behind HAProxy): a lock refresh
 * (every lock-stale/2) that waits behind the spool's fsyncs in libuv's pool must not lose a live
 * node its lock; 3 s leaves it 1.5 s.
 */
export const LOADED_FLAGS = ['--lock-stale-ms', '3000'];

// ---------------------------------------------------------------------------------------------
// Processes that are not (or no longer) our children: after `start-node.sh` exits, its node is
// an orphan; an init that does not reap leaves it a zombie, which kill(pid, 0) still finds.

export function pidAlive(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return !/^State:\s*Z/m.test(status);
  } catch {
    return false;
  }
}

/** True if the pid runs an intake node (guards against killing a recycled pid). */
function isIntakeNode(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('intake.js');
  } catch {
    return false;
  }
}

export async function waitPidGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The second build

/**
 * A copy of this package (package.json, bin/, dist/src, the migrations, node_modules linked), so
 * a test runs a fixed build even if dist/ is rebuilt meanwhile.
 */
export function copyBuild(dir: string, version?: string): string {
  mkdirSync(dir, { recursive: true });
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  if (version !== undefined) pkg.version = version;
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
  cpSync(join(repoRoot, 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(repoRoot, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
  cpSync(join(repoRoot, 'src', 'store', 'migrations'), join(dir, 'src', 'store', 'migrations'), { recursive: true });
  cpSync(join(repoRoot, 'web'), join(dir, 'web'), { recursive: true }); // the dashboard's files, read at start
  symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

/**
 * A second build: a copy of `from` with `version`, plus one more migration (a nullable column,
 * valid on both engines) numbered after the newest `from` has. Returns the copy and that number.
 */
export function makeSecondBuild(from: string, dir: string, version: string): { dir: string; schema: number } {
  copyBuild(dir, version);
  // The migrations and code of `from` (a snapshot), not of the work tree as it is now.
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  rmSync(join(dir, 'src'), { recursive: true, force: true });
  cpSync(join(from, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
  cpSync(join(from, 'src', 'store', 'migrations'), join(dir, 'src', 'store', 'migrations'), { recursive: true });
  const latest = (engine: string) =>
    Math.max(0, ...readdirSync(join(dir, 'src', 'store', 'migrations', engine)).map((f) => Number(/^(\d+)_/.exec(f)?.[1] ?? 0)));
  const schema = Math.max(latest('sqlite'), latest('postgres')) + 1;
  for (const engine of ['sqlite', 'postgres']) {
    if (latest(engine) !== schema - 1) throw new Error(`the two engines' migrations disagree (${latest('sqlite')} vs ${latest('postgres')})`);
    writeFileSync(
      join(dir, 'src', 'store', 'migrations', engine, `${String(schema).padStart(3, '0')}_request_note.sql`),
      '-- Second build of the rolling-upgrade test: a new nullable column (expand only).\nALTER TABLE requests ADD COLUMN note text;\n',
    );
  }
  return { dir, schema };
}

/** Run an intake CLI (of any build) to completion. */
export function runIntake(
  build: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(build, 'bin', 'intake.js'), ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The cluster

/** What the load scenarios shared by local and GlusterFS runs (kill-scenario.ts, upgrade-scenario.ts) are given. */
export interface ScenarioOptions {
  /** New keys per second the client aims at, and the least average the test accepts. */
  rate: number;
  minRate: number;
  /** Spool folders per node (default: one local folder). */
  spools?: (nodes: string[]) => SpoolDirs;
  /** How long a (re)starting node may take to answer /healthz (the harness's default: 20 s). */
  startTimeoutMs?: number;
  /** Flags for every node on top of the harness's NODE_FLAGS. */
  nodeFlags?: string[];
  /** Environment for every node. */
  env?: Record<string, string>;
  /** How long the final drain may take (default 60 s). */
  drainTimeoutMs?: number;
}

export interface ClusterNode {
  id: string;
  port: number;
  /** Pid of the current process (from us or from start-node.sh), or null. */
  pid: number | null;
  /** The child process when we started it ourselves. */
  proc: ChildProcess | null;
  /** Exit codes/signals of our own children, in order. */
  exits: string[];
  /** Exits of our children that killNode did not cause (a node stopping by itself), with a log tail. */
  selfExits: string[];
  /** Set by killNode while it waits for the process to go. */
  killing: boolean;
  /** When the current process answered /healthz (performance.now()). */
  upSince: number | null;
}

export interface Cluster {
  dir: string;
  /** A snapshot of the current build (bin/intake.js inside), which nodes run unless told otherwise. */
  build: string;
  /** The spool root as the test and the operator CLI see it. */
  spool: string;
  /** Each node's view of it (the same folder, or its own mount of a shared file system). */
  spools: SpoolDirs;
  db: string;
  pg: PgServer;
  haproxy: Haproxy;
  nodes: Map<string, ClusterNode>;
  logPath(id: string): string;
  pidPath(id: string): string;
  /** Arguments after `intake.js` for a node. */
  nodeArgs(id: string): string[];
  /** Start a node of `build` (default: the snapshot) ourselves, as a child process; resolves once /healthz answers. */
  startNode(id: string, build?: string): Promise<void>;
  /** SIGKILL the node's current process and wait until it is gone. */
  killNode(id: string): Promise<void>;
  /** Write start-node.sh <build> <node> and stop-node.sh <node>; returns their paths. */
  writeScripts(): { start: string; stop: string };
  /** Wait until HAProxy reports every server UP. */
  waitAllUp(timeoutMs?: number): Promise<void>;
  /** Every row's id and key. */
  readRows(): Promise<KeyedRow[]>;
  /** Wait until the spool holds no segment and the row count stays still; returns the rows. */
  waitDrained(timeoutMs: number): Promise<{ rows: KeyedRow[]; leftover: string[] }>;
  logTail(id: string, chars?: number): string;
  /** Kill every node (also those start-node.sh started), HAProxy and PostgreSQL. Idempotent. */
  close(): Promise<void>;
}

export interface ClusterOptions {
  nodes: string[];
  prefix: string;
  /** The mode each node starts in (default both); `intake mode` changes it at run time. */
  modes?: Record<string, Mode>;
  /** Environment for every node on top of the test's own (say INTAKE_CALLBACK_ALLOW_CIDRS). */
  env?: Record<string, string>;
  /** Environment of one node on top of `env` (say a foreign clock: helpers/faketime.ts). */
  nodeEnv?: Record<string, Record<string, string>>;
  /** Where each node finds the spool (default: one local folder for all, `<dir>/spool`); `spool` is the operator's view. */
  spools?: SpoolDirs;
  /** How long a starting node may take to answer /healthz (default 20 s; a node on a network file system makes many round trips before it listens). */
  startTimeoutMs?: number;
  /** Flags after NODE_FLAGS for every node (the later flag wins), say longer lock and dead times on a network file system. */
  flags?: string[];
  /** Flags of one node after NODE_FLAGS and `flags` (a later flag wins). */
  nodeFlags?: Record<string, string[]>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const tmp = tempDir(o.prefix);
  const dir = tmp.path;
  const spools = o.spools ?? localSpoolDirs(join(dir, 'spool'));
  const spool = spools.operator;
  mkdirSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(join(dir, 'run'), { recursive: true });
  const nodes = new Map<string, ClusterNode>();
  for (const id of o.nodes) nodes.set(id, { id, port: await freePort(), pid: null, proc: null, exits: [], selfExits: [], killing: false, upSince: null });

  let pgServer: PgServer | null = null;
  let haproxy: Haproxy | null = null;
  const knownPids = new Set<number>();
  const logPath = (id: string) => join(dir, 'logs', `${id}.log`);
  const pidPath = (id: string) => join(dir, 'run', `${id}.pid`);
  const node = (id: string) => {
    const n = nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  };
  const readPidFile = (id: string): number | null => {
    try {
      const pid = Number(readFileSync(pidPath(id), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  };

  // Last resort, should the test process exit without close() (say a hung test is abandoned):
  // kill synchronously what is still running.
  let pgPid: number | null = null;
  const killAllSync = () => {
    const pids = [...knownPids];
    for (const id of nodes.keys()) pids.push(readPidFile(id) ?? -1);
    for (const pid of pids) if (pid > 0 && pidAlive(pid) && isIntakeNode(pid)) trySignal(pid, 'SIGKILL');
    if (haproxy && haproxy.pid > 0) trySignal(haproxy.pid, 'SIGKILL');
    if (pgPid !== null) trySignal(pgPid, 'SIGQUIT'); // immediate shutdown of the postmaster and its backends
  };
  process.once('exit', killAllSync);

  const close = async () => {
    process.removeListener('exit', killAllSync);
    // Nodes first (they hold PostgreSQL connections), then HAProxy, then PostgreSQL.
    const pids = new Set(knownPids);
    for (const id of nodes.keys()) {
      const p = readPidFile(id);
      if (p) pids.add(p);
    }
    for (const pid of pids) {
      if (pidAlive(pid) && isIntakeNode(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    for (const pid of pids) await waitPidGone(pid, 5000);
    // Kept with the node logs when INTAKE_KEEP_TMP is set (INTAKE_HAPROXY_LOG=info logs every request).
    if (haproxy) writeFileSync(join(dir, 'logs', 'haproxy.log'), haproxy.output());
    await haproxy?.close().catch(() => undefined);
    await pgServer?.close().catch(() => undefined);
    tmp.cleanup();
  };

  try {
    const build = copyBuild(join(dir, 'build1'));
    pgServer = await startPostgres();
    pgPid = await postmasterPid(pgServer.adminUrl);
    const db = await pgServer.createDatabase();
    const m = await runIntake(build, ['migrate', '--db', db]);
    if (m.code !== 0) throw new Error(`intake migrate failed: ${m.stderr}${m.stdout}`);
    haproxy = await startHaproxy({ servers: [...nodes.values()].map((n) => ({ name: n.id, port: n.port })) });

    const modeOf = (id: string): Mode => o.modes?.[id] ?? 'both';
    const nodeArgs = (id: string) => ['start', '--port', String(node(id).port), '--node-id', id, '--spool', spools.forNode(id), '--db', db, '--mode', modeOf(id), ...NODE_FLAGS, ...(o.flags ?? []), ...(o.nodeFlags?.[id] ?? [])];

    const pool = new pg.Pool({ connectionString: db, max: 2 });
    let closing: Promise<void> | null = null;
    const readRows = async () => (await pool.query<KeyedRow>('SELECT id::text AS id, idempotency_key FROM requests')).rows;
    const pg_ = pgServer;
    const hap = haproxy;

    const cluster: Cluster = {
      dir,
      build,
      spool,
      spools,
      db,
      pg: pg_,
      haproxy: hap,
      nodes,
      logPath,
      pidPath,
      nodeArgs,
      async startNode(id, from = build) {
        const n = node(id);
        const fd = openSync(logPath(id), 'a');
        const proc = spawn(process.execPath, [join(from, 'bin', 'intake.js'), ...nodeArgs(id)], { stdio: ['ignore', fd, fd], cwd: dir, env: { ...process.env, ...o.env, ...o.nodeEnv?.[id] } });
        closeSync(fd);
        const pid = proc.pid;
        if (pid === undefined) throw new Error(`could not spawn node ${id}`);
        knownPids.add(pid);
        writeFileSync(pidPath(id), `${pid}\n`);
        n.pid = pid;
        n.proc = proc;
        n.upSince = null;
        let exited = false;
        proc.once('exit', (code, signal) => {
          exited = true;
          n.exits.push(signal ?? String(code));
          if (n.proc !== proc) return;
          n.upSince = null;
          if (!n.killing) {
            n.selfExits.push(`node ${id} (pid ${pid}) exited by itself (${signal ?? code}):\n${cluster.logTail(id, 3000)}`);
            n.pid = null;
            n.proc = null;
          }
        });
        const startTimeoutMs = o.startTimeoutMs ?? 20_000;
        const deadline = Date.now() + startTimeoutMs;
        for (;;) {
          if (exited) throw new Error(`node ${id} exited (${n.exits.at(-1)}) before it answered /healthz:\n${cluster.logTail(id)}`);
          const ok = await httpStatus(`http://127.0.0.1:${n.port}/healthz`).then(
            (s) => s === 200,
            () => false,
          );
          if (ok) break;
          if (Date.now() > deadline) throw new Error(`node ${id} did not answer /healthz within ${startTimeoutMs / 1000} s:\n${cluster.logTail(id)}`);
          await sleep(25);
        }
        n.upSince = performance.now();
      },
      async killNode(id) {
        const n = node(id);
        const pid = n.pid;
        if (pid === null) throw new Error(`node ${id} is not running`);
        n.upSince = null;
        n.killing = true;
        try {
          const exited = n.proc && n.proc.exitCode === null && n.proc.signalCode === null ? new Promise((r) => n.proc!.once('exit', r)) : null;
          try {
            process.kill(pid, 'SIGKILL');
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // gone by itself just now
          }
          if (exited) await exited;
          if (!(await waitPidGone(pid, 5000))) throw new Error(`node ${id} (pid ${pid}) still there 5 s after SIGKILL`);
        } finally {
          n.killing = false;
        }
        n.pid = null;
        n.proc = null;
      },
      writeScripts() {
        const ports = [...nodes.values()].map((n) => `    ${n.id}) port=${n.port} mode=${modeOf(n.id)} spool=${spools.forNode(n.id)} ;;`).join('\n');
        const exports = Object.entries(o.env ?? {}).map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'\n`).join('');
        const start = join(dir, 'start-node.sh');
        const stop = join(dir, 'stop-node.sh');
        const flags = [...NODE_FLAGS, ...(o.flags ?? [])].join(' ');
        writeFileSync(
          start,
          `#!/usr/bin/env bash
# start-node.sh BUILD NODE: start NODE from BUILD in the background on its own port.
set -euo pipefail
build="$1" node="$2"
case "$node" in
${ports}
    *) echo "start-node: unknown node $node" >&2; exit 2 ;;
esac
cd ${dir}
${exports}${process.execPath} "$build/bin/intake.js" start --port "$port" --node-id "$node" --spool "$spool" --db ${db} --mode "$mode" ${flags} \\
  >> ${join(dir, 'logs')}/"$node".log 2>&1 < /dev/null &
echo $! > ${join(dir, 'run')}/"$node".pid
echo "start-node: $node started from $build (pid $!, port $port)"
`,
        );
        writeFileSync(
          stop,
          `#!/usr/bin/env bash
# stop-node.sh NODE: SIGTERM the node and return once its process has exited (a zombie counts).
set -euo pipefail
node="$1"
pid=$(cat ${join(dir, 'run')}/"$node".pid)
alive() { [ -r /proc/$1/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null; }
if ! alive "$pid"; then echo "stop-node: $node (pid $pid) is not running"; exit 0; fi
kill -TERM "$pid"
for _ in $(seq 1 300); do
  if ! alive "$pid"; then echo "stop-node: $node (pid $pid) stopped"; exit 0; fi
  sleep 0.1
done
echo "stop-node: $node (pid $pid) still running 30 s after SIGTERM" >&2
exit 1
`,
        );
        chmodSync(start, 0o755);
        chmodSync(stop, 0o755);
        return { start, stop };
      },
      async waitAllUp(timeoutMs = 20_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const states = await hap.serverStates();
          if ([...nodes.keys()].every((id) => states.get(id) === 'UP')) return;
          if (Date.now() > deadline) throw new Error(`HAProxy servers not all UP after ${timeoutMs} ms: ${JSON.stringify([...states])}`);
          await sleep(100);
        }
      },
      readRows,
      async waitDrained(timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        let last = -1;
        for (;;) {
          const leftover = segmentFiles(spool);
          const rows = await readRows();
          if (leftover.length === 0 && rows.length === last) return { rows, leftover };
          last = leftover.length === 0 ? rows.length : -1;
          if (Date.now() > deadline) return { rows, leftover };
          await sleep(300);
        }
      },
      logTail(id, chars = 4000) {
        try {
          return readFileSync(logPath(id), 'utf8').slice(-chars);
        } catch {
          return '(no log)';
        }
      },
      close() {
        closing ??= (async () => {
          await pool.end().catch(() => undefined);
          await close();
        })();
        return closing;
      },
    };
    return cluster;
  } catch (err) {
    await close();
    throw err;
  }
}

function trySignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** The postmaster's pid, from postmaster.pid in its data directory (null if it cannot be read). */
async function postmasterPid(adminUrl: string): Promise<number | null> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const dataDir = (await c.query<{ setting: string }>("SELECT setting FROM pg_settings WHERE name = 'data_directory'")).rows[0]?.setting;
    if (!dataDir) return null;
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  } finally {
    await c.end();
  }
}

function httpStatus(url: string, timeoutMs = 1000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** What HAProxy itself counted: 5xx it sent, its retries and redispatches, sessions per server (of the ingest backend: POST /v1/requests). */
export function lbFigures(stats: HaproxyStat[]): { lb5xx: number; lbRetries: number; lbRedispatches: number; lbSessions: Record<string, number> } {
  const fe = stats.find((s) => s.proxy === 'intake_in' && s.name === 'FRONTEND');
  const be = stats.find((s) => s.proxy === ROLE_BACKENDS.ingest && s.name === 'BACKEND');
  const lbSessions: Record<string, number> = {};
  for (const s of stats) if (s.proxy === ROLE_BACKENDS.ingest && s.name !== 'BACKEND') lbSessions[s.name] = s.stot;
  return { lb5xx: fe?.hrsp5xx ?? -1, lbRetries: be?.wretr ?? -1, lbRedispatches: be?.wredis ?? -1, lbSessions };
}

// ---------------------------------------------------------------------------------------------
// The client

export interface LoadOptions {
  url: string;
  /** New keys per second. */
  rate: number;
  /** Most keys in flight at once (a key in flight may be waiting to retry). */
  concurrency: number;
  /** One attempt's time limit. */
  attemptTimeoutMs?: number;
}

/**
 * A paced client that behaves like a well-made one: new keys start at `rate` per second (at most
 * `concurrency` in flight), each with its own Idempotency-Key; a key is retried after a
 * connection error, a timeout or a 5xx (after Retry-After when the answer gives one, else a short
 * random delay) until it gets a 202. A 4xx is a wrong answer: the key is given up.
 */
export class LoadClient {
  readonly sent = new Set<string>();
  /** key -> id from the 202 */
  readonly acked = new Map<string, string>();
  readonly wrongAnswers: string[] = [];
  /** Keys given up without a 202 (client-visible failures). */
  readonly failed: string[] = [];
  /** Answer counts: HTTP status, or conn:<code> for a connection error, or timeout. */
  readonly answers = new Map<string, number>();
  raw5xx = 0;
  attempts = 0;
  retries = 0;
  /** Longest time from a key's first attempt to its 202 (ms). */
  maxKeyMs = 0;
  private readonly o: Required<LoadOptions>;
  private readonly agent: Agent;
  private readonly prefix = `k${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private stopping = false;
  private giveUpAt = Infinity;
  private pacing: Promise<void> | null = null;
  private startedAt = 0;
  private stoppedAt = 0;
  private idle: (() => void) | null = null;
  private stopped: Promise<void> | null = null;

  constructor(o: LoadOptions) {
    this.o = { attemptTimeoutMs: 10_000, ...o };
    this.agent = new Agent({ keepAlive: true, maxSockets: o.concurrency + 8 });
  }

  start(): void {
    this.startedAt = performance.now();
    this.pacing = this.pace();
  }

  /** New keys started per second, from start() to stop() (or now). */
  rate(): number {
    const end = this.stoppedAt || performance.now();
    return this.sent.size / ((end - this.startedAt) / 1000);
  }

  get elapsedMs(): number {
    return (this.stoppedAt || performance.now()) - this.startedAt;
  }

  get unacked(): number {
    return this.inFlight;
  }

  /** Stop starting keys; wait for every key in flight to be acked, or give up after settleMs. */
  stop(settleMs: number): Promise<void> {
    this.stopped ??= this.doStop(settleMs);
    return this.stopped;
  }

  private async doStop(settleMs: number): Promise<void> {
    this.stopping = true;
    this.stoppedAt = performance.now();
    for (const w of this.waiters.splice(0)) w();
    await this.pacing;
    this.giveUpAt = performance.now() + settleMs;
    if (this.inFlight > 0) await new Promise<void>((r) => (this.idle = r));
    this.agent.destroy();
  }

  private async pace(): Promise<void> {
    const interval = 1000 / this.o.rate;
    let next = performance.now();
    let n = 0;
    while (!this.stopping) {
      const now = performance.now();
      // A client that fell behind (every slot busy) catches up at most 1 s worth, no more.
      if (now - next > 1000) next = now - 1000;
      if (next > now) {
        await sleep(Math.max(1, next - now));
        continue;
      }
      if (this.inFlight >= this.o.concurrency) {
        await new Promise<void>((r) => this.waiters.push(r));
        continue;
      }
      next += interval;
      void this.sendKey(`${this.prefix}-${n++}`);
    }
  }

  private count(what: string): void {
    this.answers.set(what, (this.answers.get(what) ?? 0) + 1);
  }

  private async sendKey(key: string): Promise<void> {
    // One body per key, sent again as it was on every retry: a retry with another body under the
    // same Idempotency-Key is a new request, which the node that saw the first refuses (422).
    const body = JSON.stringify({ payload: { key, at: Date.now() }, callback_url: 'https://example.com/hook', metadata: { test: 'cluster' } });
    this.inFlight++;
    this.sent.add(key);
    const t0 = performance.now();
    try {
      for (;;) {
        const r = await this.attempt(key, body);
        if (r.done) {
          this.maxKeyMs = Math.max(this.maxKeyMs, performance.now() - t0);
          return;
        }
        if (performance.now() > this.giveUpAt) {
          this.failed.push(key);
          return;
        }
        this.retries++;
        await sleep(r.retryAfterMs ?? 20 + Math.random() * 80);
      }
    } catch (err) {
      this.failed.push(key);
      this.wrongAnswers.push(`client error for ${key}: ${(err as Error).message}`);
    } finally {
      this.inFlight--;
      this.waiters.shift()?.();
      if (this.inFlight === 0 && this.idle) this.idle();
    }
  }

  /** One POST. done: the key is settled (202, or a 4xx that retrying will not change). */
  private attempt(key: string, body: string): Promise<{ done: boolean; retryAfterMs?: number }> {
    this.attempts++;
    return new Promise((resolve) => {
      const req = request(
        `${this.o.url}/v1/requests`,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'idempotency-key': key },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('error', () => {
            this.count('conn:response');
            resolve({ done: false });
          });
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            this.count(String(status));
            if (status === 202) {
              let id: unknown;
              try {
                id = (JSON.parse(text) as { id?: unknown }).id;
              } catch {
                id = undefined;
              }
              if (typeof id !== 'string') {
                this.wrongAnswers.push(`202 without an id for ${key}: ${text.slice(0, 200)}`);
                resolve({ done: false });
                return;
              }
              const before = this.acked.get(key);
              if (before !== undefined && before !== id) this.wrongAnswers.push(`key ${key} acked as ${before} and later as ${id}`);
              this.acked.set(key, id);
              resolve({ done: true });
              return;
            }
            if (status >= 500) {
              this.raw5xx++;
              const ra = Number(res.headers['retry-after']);
              resolve(Number.isFinite(ra) && ra > 0 ? { done: false, retryAfterMs: Math.min(ra * 1000, 5000) } : { done: false });
              return;
            }
            this.wrongAnswers.push(`${status} for ${key}: ${text.slice(0, 200)}`);
            this.failed.push(key);
            resolve({ done: true });
          });
        },
      );
      req.setTimeout(this.o.attemptTimeoutMs, () => {
        this.count('timeout');
        req.destroy(new Error('timeout'));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.message !== 'timeout') this.count(`conn:${err.code ?? err.message}`);
        resolve({ done: false });
      });
      req.end(body);
    });
  }

  /** Attempts that ended in a connection error or a timeout (no HTTP answer at all). */
  get connErrors(): number {
    let n = 0;
    for (const [k, v] of this.answers) if (k.startsWith('conn:') || k === 'timeout') n += v;
    return n;
  }

  summary(): string {
    return [...this.answers].map(([k, v]) => `${k}:${v}`).join(' ');
  }
}

