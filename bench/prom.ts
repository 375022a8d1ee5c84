// Reading an intake node's /metrics (Prometheus text format) in the benchmark.

export async function scrape(url: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${url}/metrics`, { headers, signal: AbortSignal.timeout(5000) });
  return res.text();
}

const NUMBER = '([0-9.eE+-]+|NaN|[+-]Inf)';

/** Mean of a Prometheus histogram from its _sum and _count lines. */
export function histogramMean(text: string, name: string): number | null {
  const sum = new RegExp(`^${name}_sum(?:\\{[^}]*\\})? ${NUMBER}$`, 'm').exec(text);
  const count = new RegExp(`^${name}_count(?:\\{[^}]*\\})? ${NUMBER}$`, 'm').exec(text);
  if (!sum || !count || Number(count[1]) === 0) return null;
  return Number(sum[1]) / Number(count[1]);
}

/**
 * The sum of every sample of `name` whose labels include `labels` (a counter over all its
 * label values, say), or null when there is none.
 */
export function sampleSum(text: string, name: string, labels: Record<string, string> = {}): number | null {
  const re = new RegExp(`^${name}(?:\\{([^}]*)\\})? ${NUMBER}$`, 'gm');
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total: number | null = null;
  for (const m of text.matchAll(re)) {
    const have = (m[1] ?? '').split(',');
    if (want.every((w) => have.includes(w))) total = (total ?? 0) + Number(m[2]);
  }
  return total;
}

/** The node's event-loop delay p99 over its last 5 s monitoring window, in ms. */
export function loopDelayP99Ms(text: string): number | null {
  const s = sampleSum(text, 'intake_event_loop_delay_seconds', { quantile: '0.99' });
  return s === null ? null : s * 1000;
}

/**
 * Reads the node's event-loop delay p99 every 5 s (the node's own window) while a measurement
 * runs: the last reading describes the last 5 s only, the largest one the worst stretch of a
 * long window.
 */
export class LoopDelayWatch {
  private readonly url: string;
  private readonly timer: NodeJS.Timeout;
  private readings: number[] = [];

  constructor(url: string) {
    this.url = url;
    this.timer = setInterval(() => void this.read(), 5000);
  }

  private async read(): Promise<void> {
    try {
      const v = loopDelayP99Ms(await scrape(this.url));
      if (v !== null) this.readings.push(v);
    } catch {
      // one missed reading
    }
  }

  /** Reads once more and stops: the last reading and the largest. */
  async stop(): Promise<{ lastMs: number; maxMs: number }> {
    clearInterval(this.timer);
    await this.read();
    return { lastMs: this.readings.at(-1) ?? NaN, maxMs: this.readings.length ? Math.max(...this.readings) : NaN };
  }
}
