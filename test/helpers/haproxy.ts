// A real HAProxy in front of test nodes (Debian package `haproxy`), run in the foreground
// (`haproxy -f cfg -db`) as a child process. Its config is ops/haproxy.cfg itself, with the test's
// addresses: the frontend binds a free port on 127.0.0.1, each role backend lists the test's
// servers, and the check interval is shorter so a test does not wait for it. The routing (ACLs by
// method and path), the checks (/readyz?role=ingest|work) and the retry rules are the shipped ones.
// A stats listener on a second port gives the servers' states and what HAProxy itself counted.
// A missing binary fails the test; it never skips.
import { freePort } from './net.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { repoRoot } from './daemon.js';

export interface HaproxyBackend {
  name: string;
  port: number;
}

/** The roles a load balancer routes to, and the backend of ops/haproxy.cfg that serves each. */
export type HaproxyRole = 'ingest' | 'work';
export const ROLE_BACKENDS: Record<HaproxyRole, string> = { ingest: 'intake_ingest', work: 'intake_work' };

export interface HaproxyOptions {
  /** Every node, listed in every role backend as ops/haproxy.cfg does: the checks decide. */
  servers: HaproxyBackend[];
  /** Another list for a role's backend (say one that leaves a node out). */
  roles?: Partial<Record<HaproxyRole, HaproxyBackend[]>>;
  /** Health check period (ms); one failure takes a server out, two passes bring it back. */
  interMs?: number;
  fall?: number;
  rise?: number;
  startTimeoutMs?: number;
  /** HAProxy log level (stdout, kept in output()); `info` logs every request. Default notice, or $INTAKE_HAPROXY_LOG. */
  logLevel?: string;
}

/** One row of HAProxy's stats CSV (the fields the tests use). */
export interface HaproxyStat {
  proxy: string;
  /** FRONTEND, BACKEND or the server name. */
  name: string;
  /** UP, DOWN, MAINT, OPEN, "UP 1/2", "DOWN 1/2", ... */
  status: string;
  /** Answers by class: what a server (or the frontend) sent back. */
  hrsp2xx: number;
  hrsp5xx: number;
  /** Connection errors and retries/redispatches, as HAProxy counts them. */
  econ: number;
  wretr: number;
  wredis: number;
  /** Sessions (requests, in HTTP mode with keep-alive: connections) handled in all. */
  stot: number;
}

export interface Haproxy {
  /** Where clients connect: http://127.0.0.1:port */
  url: string;
  port: number;
  /** The haproxy process id (for a last-resort kill on exit). */
  pid: number;
  configPath: string;
  stats(): Promise<HaproxyStat[]>;
  /** Server name -> status, for the servers of a role's backend (default ingest). */
  serverStates(role?: HaproxyRole): Promise<Map<string, string>>;
  output(): string;
  close(): Promise<void>;
}

/** The haproxy binary, or a thrown error naming the package to install. */
export function findHaproxy(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) {
    if (d && existsSync(join(d, 'haproxy'))) return join(d, 'haproxy');
  }
  throw new Error('haproxy not found (PATH, /usr/sbin): install the Debian package `haproxy` (apt-get install -y haproxy; .ci/run does it)');
}

export { freePort };

export interface HaproxyConfigOptions {
  port: number;
  statsPort: number;
  servers: Record<HaproxyRole, HaproxyBackend[]>;
  interMs: number;
  fall: number;
  rise: number;
  logLevel: string;
}

/**
 * ops/haproxy.cfg as a test runs it: the frontend on 127.0.0.1, the test's servers in each role
 * backend, the test's check timings and log level, a lower global maxconn (a test machine's file
 * descriptors), and a stats listener. Throws when the file no longer has a part this replaces, so
 * a change there cannot leave the tests on an old config.
 */
export function haproxyConfig(o: HaproxyConfigOptions, ops = readFileSync(join(repoRoot, 'ops', 'haproxy.cfg'), 'utf8')): string {
  const roleOf = new Map(Object.entries(ROLE_BACKENDS).map(([role, name]) => [name, role as HaproxyRole]));
  const replaced = new Set<string>();
  const out: string[] = [];
  let section = '';
  for (const line of ops.split('\n')) {
    if (/^[a-z]/.test(line)) section = line.trim();
    const backend = /^backend (\S+)$/.exec(section)?.[1];
    if (section === 'global' && /^\s+maxconn /.test(line)) {
      out.push('    maxconn 4000');
      replaced.add('maxconn');
    } else if (section === 'global' && /^\s+log stdout /.test(line)) {
      out.push(line.replace(/\S+$/, o.logLevel));
      replaced.add('log');
    } else if (section.startsWith('frontend ') && /^\s+bind /.test(line)) {
      out.push(`    bind 127.0.0.1:${o.port}`);
      replaced.add('bind');
    } else if (backend !== undefined) {
      const role = roleOf.get(backend);
      if (!role) throw new Error(`ops/haproxy.cfg has a backend ${backend} that test/helpers/haproxy.ts does not know (ROLE_BACKENDS)`);
      if (/^\s+default-server /.test(line)) {
        out.push(line.replace(/ inter \S+/, ` inter ${o.interMs}ms`).replace(/ fall \d+/, ` fall ${o.fall}`).replace(/ rise \d+/, ` rise ${o.rise}`));
        replaced.add(`timings ${backend}`);
      } else if (/^\s+server /.test(line)) {
        // The first server line of the file's backend stands for all of the test's.
        if (!replaced.has(`servers ${backend}`)) out.push(...o.servers[role].map((s) => `    server ${s.name} 127.0.0.1:${s.port} check`));
        replaced.add(`servers ${backend}`);
      } else out.push(line);
    } else out.push(line);
  }
  const wanted = ['maxconn', 'log', 'bind', ...Object.values(ROLE_BACKENDS).flatMap((b) => [`timings ${b}`, `servers ${b}`])];
  const missing = wanted.filter((w) => !replaced.has(w));
  if (missing.length > 0) throw new Error(`ops/haproxy.cfg no longer has what test/helpers/haproxy.ts replaces: ${missing.join(', ')}`);
  return `# Generated by test/helpers/haproxy.ts from ops/haproxy.cfg
${out.join('\n').trimEnd()}

listen stats
    bind 127.0.0.1:${o.statsPort}
    stats enable
    stats uri /stats
    stats refresh 0
`;
}

function httpGet(url: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function parseStats(csv: string): HaproxyStat[] {
  const lines = csv.split('\n').filter((l) => l.length > 0);
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`haproxy stats CSV has no column ${name}: ${lines[0]}`);
    return i;
  };
  const [pxname, svname, status, hrsp2xx, hrsp5xx, econ, wretr, wredis, stot] = ['pxname', 'svname', 'status', 'hrsp_2xx', 'hrsp_5xx', 'econ', 'wretr', 'wredis', 'stot'].map(col) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return lines.slice(1).map((l) => {
    const f = l.split(',');
    const n = (i: number) => Number(f[i] ?? '') || 0;
    return { proxy: f[pxname] ?? '', name: f[svname] ?? '', status: f[status] ?? '', hrsp2xx: n(hrsp2xx), hrsp5xx: n(hrsp5xx), econ: n(econ), wretr: n(wretr), wredis: n(wredis), stot: n(stot) };
  });
}

export async function startHaproxy(o: HaproxyOptions): Promise<Haproxy> {
  const bin = findHaproxy();
  const dir = mkdtempSync(join(tmpdir(), 'intake-haproxy-'));
  const port = await freePort();
  const statsPort = await freePort();
  const configPath = join(dir, 'haproxy.cfg');
  const servers = { ingest: o.roles?.ingest ?? o.servers, work: o.roles?.work ?? o.servers };
  const logLevel = o.logLevel ?? process.env.INTAKE_HAPROXY_LOG ?? 'notice';
  writeFileSync(configPath, haproxyConfig({ port, statsPort, servers, interMs: o.interMs ?? 200, fall: o.fall ?? 1, rise: o.rise ?? 2, logLevel }));

  let out = '';
  const proc: ChildProcess = spawn(bin, ['-f', configPath, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.setEncoding('utf8');
  proc.stderr!.setEncoding('utf8');
  proc.stdout!.on('data', (d: string) => (out += d));
  proc.stderr!.on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const spawnError = new Promise<Error>((resolve) => proc.once('error', resolve));

  const statsUrl = `http://127.0.0.1:${statsPort}/stats;csv`;
  const stats = async () => parseStats(await httpGet(statsUrl));
  const close = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  // Up when the stats page answers (the frontend is bound by then too).
  const deadline = Date.now() + (o.startTimeoutMs ?? 10_000);
  for (;;) {
    const failed = await Promise.race([
      exited.then((code) => new Error(`haproxy exited with ${code} at start:\n${out}`)),
      spawnError.then((err) => new Error(`haproxy could not be started (${bin}): ${err.message}; install the Debian package \`haproxy\``)),
      stats().then(
        () => null,
        () => undefined,
      ),
    ]);
    if (failed === null) break;
    if (failed instanceof Error) {
      await close();
      throw failed;
    }
    if (Date.now() > deadline) {
      await close();
      throw new Error(`haproxy did not answer on its stats port within ${o.startTimeoutMs ?? 10_000} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: proc.pid ?? -1,
    configPath,
    stats,
    async serverStates(role: HaproxyRole = 'ingest') {
      const names = new Set(servers[role].map((s) => s.name));
      return new Map((await stats()).filter((s) => s.proxy === ROLE_BACKENDS[role] && names.has(s.name)).map((s) => [s.name, s.status]));
    },
    output: () => out,
    close,
  };
}
