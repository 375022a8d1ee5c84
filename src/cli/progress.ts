// A progress line for long work (callbacks replay, mode --wait, node drain --wait, node wait,
// migrate), shown only on a terminal: one line on stderr, rewritten in place and cleared when
// done. In a pipe or a log file nothing is written, so scripts see only the command's answer.
export class Progress {
  private lastAt = -Infinity;
  private shown = false;
  private ticker: NodeJS.Timeout | null = null;

  private readonly stream: NodeJS.WriteStream;
  private readonly everyMs: number;

  constructor(stream: NodeJS.WriteStream = process.stderr, everyMs = 100) {
    this.stream = stream;
    this.everyMs = everyMs;
  }

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  /** Show `text` (at most every `everyMs`, so a fast loop does not flood the terminal). */
  update(text: string): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastAt < this.everyMs) return;
    this.lastAt = now;
    this.shown = true;
    // One line at most, so that \r returns to its start (a terminal of unknown width: 80).
    const width = this.stream.columns > 0 ? this.stream.columns - 1 : 79;
    this.stream.write(`\r\x1b[K${text.slice(0, width)}`);
  }

  /** For one long await: `text(elapsed seconds)` every second until done(). */
  tick(text: (elapsedS: number) => string): void {
    if (!this.enabled) return;
    const t0 = performance.now();
    const show = () => this.update(text(Math.round((performance.now() - t0) / 1000)));
    show();
    this.ticker = setInterval(show, 1000);
    this.ticker.unref();
  }

  /** Clear the line (before the command's answer is printed). */
  done(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}
