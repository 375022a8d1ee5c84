// Heartbeats: each node rewrites its heartbeat file every second with a counter that only goes
// up. Liveness is judged by whether that counter advances, measured on the observer's own
// clock; clocks of different hosts are never compared.
import { promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import { mkdirDurable } from '../spool/fsutil.js';
import type { Mode } from '../config.js';
import { heartbeatPath, heartbeatsDir } from './paths.js';

export interface Heartbeat {
  node: string;
  /** Registration number of this process (leader = lowest live). */
  seq: number;
  /** Incremented at every beat. */
  counter: number;
  mode: Mode;
  /** Generation of cluster/desired.json this node has applied. */
  generation: number;
  /** Why the desired mode could not be applied (for example an unsupported schema), or null. */
  modeError: string | null;
  version: string;
  pid: number;
  host: string;
  url: string;
  /** Sealed segments of this node waiting for a drainer. */
  backlog: number;
  /** True while drained for the load balancer (readiness fails). */
  drained: boolean;
  ready: boolean;
  /** Milliseconds since this node last accepted a request (its own clock), or null if never. */
  idleMs: number | null;
  leader: boolean;
  accepted: number;
  startedAt: string;
  /** Running totals for the dashboard's rates; absent in heartbeats of older builds. */
  counters?: HeartbeatCounters;
}

/**
 * Totals since this process started, with the process's own uptime when they were read: a
 * reader divides differences by differences of uptime, so no clocks are compared.
 */
export interface HeartbeatCounters {
  uptimeMs: number;
  accepted: number;
  drained: number;
  completed: number;
  callbacksDelivered: number;
  callbacksFailed: number;
}

export class HeartbeatPublisher {
  private counter = 0;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private readonly root: string;
  private readonly node: string;
  private readonly everyMs: number;
  private readonly state: () => Omit<Heartbeat, 'counter' | 'node' | 'pid' | 'host'>;
  private readonly onError: (err: unknown) => void;

  constructor(o: { root: string; node: string; everyMs: number; state: HeartbeatPublisher['state']; onError: (err: unknown) => void }) {
    this.root = o.root;
    this.node = o.node;
    this.everyMs = o.everyMs;
    this.state = o.state;
    this.onError = o.onError;
  }

  async start(): Promise<void> {
    await mkdirDurable(heartbeatsDir(this.root));
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.everyMs);
    this.timer.unref();
  }

  /** Write a beat now (also used right after a mode change, so `--wait` sees it sooner). */
  beat(): Promise<void> {
    if (this.writing) return this.writing;
    this.writing = this.write()
      .catch((err) => this.onError(err))
      .finally(() => {
        this.writing = null;
      });
    return this.writing;
  }

  private async write(): Promise<void> {
    const hb: Heartbeat = { ...this.state(), node: this.node, counter: ++this.counter, pid: process.pid, host: hostname() };
    // Atomic replace; no fsync: a heartbeat lost in a power cut is simply an old heartbeat.
    const path = heartbeatPath(this.root, this.node);
    const tmp = `${path}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(hb));
    await fsp.rename(tmp, path);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.writing;
  }
}

export async function readHeartbeats(root: string): Promise<Heartbeat[]> {
  let names: string[];
  try {
    names = await fsp.readdir(heartbeatsDir(root));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: Heartbeat[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(await fsp.readFile(`${heartbeatsDir(root)}/${name}`, 'utf8')) as Heartbeat);
    } catch {
      // removed or being replaced this instant: the next look sees it
    }
  }
  return out.sort((a, b) => (a.node < b.node ? -1 : 1));
}
