// Clients waiting for a request to be completed (`Prefer: wait=N`, `GET ?wait=N`): a Map of
// request id -> the few waiters on it. A waiter is a resolve function and a timer, so thousands
// of waiting clients cost little memory (test/intake/wait.test.ts measures 5,000 of them).
// Whoever learns of a completion calls completed(): the work API of this node after a committed
// completion, the PostgreSQL listener for completions through any node, the fallback poller.
// A stopping node releases every waiter at once: a POST then gets its 202 (the request is
// durable), never an error.

/** Why a wait ended: the request was completed, the time ran out, or the node is stopping. */
export type WaitEnd = 'completed' | 'timeout' | 'stopping';

export interface Wait {
  done: Promise<WaitEnd>;
  /** Stop waiting (the caller found its answer another way); `done` resolves 'timeout'. */
  cancel(): void;
}

interface Waiter {
  end: (e: WaitEnd) => void;
  timer: NodeJS.Timeout;
}

export class CompletionWaiters {
  private readonly byId = new Map<string, Waiter[]>();
  private count = 0;
  private stopping = false;
  private readonly onChange: ((waiting: number) => void) | undefined;

  constructor(o: { onChange?: (waiting: number) => void } = {}) {
    this.onChange = o.onChange;
  }

  /** Clients waiting now. */
  get size(): number {
    return this.count;
  }

  /** Ids someone waits for (the fallback poller checks them). */
  ids(): string[] {
    return [...this.byId.keys()];
  }

  wait(id: string, ms: number): Wait {
    if (this.stopping) return { done: Promise.resolve('stopping'), cancel: () => undefined };
    let waiter!: Waiter;
    const done = new Promise<WaitEnd>((resolve) => {
      waiter = {
        end: (e) => {
          clearTimeout(waiter.timer);
          this.remove(id, waiter);
          resolve(e);
        },
        timer: setTimeout(() => waiter.end('timeout'), ms),
      };
    });
    const list = this.byId.get(id);
    if (list) list.push(waiter);
    else this.byId.set(id, [waiter]);
    this.count++;
    this.onChange?.(this.count);
    return { done, cancel: () => waiter.end('timeout') };
  }

  /** These requests were completed: wake whoever waits for them. Ids nobody waits for cost a lookup. */
  completed(ids: Iterable<string>): void {
    for (const id of ids) {
      const list = this.byId.get(id);
      if (list) for (const w of [...list]) w.end('completed');
    }
  }

  /** The node stops: every waiter ends now, and new waits end at once. */
  stop(): void {
    this.stopping = true;
    for (const list of [...this.byId.values()]) for (const w of [...list]) w.end('stopping');
  }

  private remove(id: string, w: Waiter): void {
    const list = this.byId.get(id);
    if (!list) return;
    const i = list.indexOf(w);
    if (i < 0) return; // ended twice (completed and cancelled): counted once
    list.splice(i, 1);
    if (list.length === 0) this.byId.delete(id);
    this.count--;
    this.onChange?.(this.count);
  }
}
