// A fixed-rate load: POST /v1/requests at a steady rate (an open loop, as clients arrive in
// production), over a keep-alive agent with at most `connections` requests in flight. Requests
// are spread evenly over time: every 5 ms tick sends what is due by then. autocannon's own
// rate limit sends each second's share in a burst at the start of the second, which measures
// a queue, not the latency at that rate.
// When every connection is busy, what is due waits for a free one: the client then falls behind
// the rate (sent/s below it), which says the node could not take that rate.
import http from 'node:http';
import { Samples } from './common.js';

export class PacedLoad {
  private readonly url: URL;
  private readonly body: Buffer;
  private readonly rate: number;
  private readonly connections: number;
  private readonly agent: http.Agent;
  private timer: NodeJS.Timeout | null = null;
  private t0 = 0;
  private inFlight = 0;
  private idle: (() => void) | null = null;
  /** Requests sent, answered 202 (accepted), answered otherwise (by status), failed without an answer. */
  sent = 0;
  accepted = 0;
  readonly statuses: Record<string, number> = {};
  errors = 0;
  /** Latency of 2xx answers while recording (from the request's send to its answer). */
  readonly latency = new Samples();
  recording = false;

  constructor(url: string, body: string, ratePerS: number, connections = 64) {
    this.url = new URL('/v1/requests', url);
    this.body = Buffer.from(body);
    this.rate = ratePerS;
    this.connections = connections;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  }

  start(): void {
    this.t0 = performance.now();
    this.timer = setInterval(() => this.tick(), 5);
  }

  private tick(): void {
    const due = Math.floor(((performance.now() - this.t0) / 1000) * this.rate);
    while (this.sent < due && this.inFlight < this.connections) this.send();
  }

  private send(): void {
    this.sent++;
    this.inFlight++;
    const t = performance.now();
    let answered = false;
    const done = (status: number | null) => {
      if (answered) return; // an error after the answer began
      answered = true;
      this.inFlight--;
      if (status === 202) this.accepted++;
      if (status !== null) this.statuses[status] = (this.statuses[status] ?? 0) + 1;
      else this.errors++;
      if (this.recording && status !== null && status >= 200 && status < 300) this.latency.add(performance.now() - t);
      if (this.timer) this.tick(); // a connection is free: send what is overdue now, not at the next tick
      else if (this.inFlight === 0) this.idle?.();
    };
    const req = http.request(
      this.url,
      { method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': String(this.body.length) }, timeout: 30_000 },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
        res.on('error', () => done(null));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => done(null));
    req.end(this.body);
  }

  /** Stops sending and waits for the answers still due. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.inFlight > 0) await new Promise<void>((r) => (this.idle = r));
    this.agent.destroy();
  }
}
