// Watches the event loop that serves HTTP and the spool: its delay is exported as a metric, and
// a window whose p99 passes the threshold is logged as a warning (something ran on the loop
// that belongs off it, or the node is out of CPU).
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';

const WINDOW_MS = 5000;
/** Warnings at most this often, so a saturated node does not flood its log. */
const WARN_EVERY_MS = 60_000;

export class LoopMonitor {
  private readonly h: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  private timer: NodeJS.Timeout | null = null;
  private warnedAt = -Infinity;
  private readonly o: { metrics: Metrics; log: Logger; warnMs: number };

  constructor(o: { metrics: Metrics; log: Logger; warnMs: number }) {
    this.o = o;
  }

  start(): void {
    if (this.timer) return;
    this.h.enable();
    this.timer = setInterval(() => this.sample(), WINDOW_MS);
    this.timer.unref();
  }

  private sample(): void {
    const ms = (ns: number) => ns / 1e6;
    const p50 = ms(this.h.percentile(50));
    const p99 = ms(this.h.percentile(99));
    const max = ms(this.h.max);
    this.h.reset();
    const g = this.o.metrics.eventLoopDelaySeconds;
    g.set({ quantile: '0.5' }, p50 / 1000);
    g.set({ quantile: '0.99' }, p99 / 1000);
    g.set({ quantile: '1' }, max / 1000);
    if (p99 > this.o.warnMs && performance.now() - this.warnedAt >= WARN_EVERY_MS) {
      this.warnedAt = performance.now();
      this.o.log.warn({ p99Ms: Math.round(p99 * 10) / 10, maxMs: Math.round(max * 10) / 10, thresholdMs: this.o.warnMs }, 'event loop delayed');
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.h.disable();
  }
}
