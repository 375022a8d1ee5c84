// Who is alive, and who leads. Each observer remembers, per node, the last counter it saw and
// when (on its own monotonic clock); a node whose counter has not moved for deadAfterMs is dead.
// A node that comes back simply starts advancing its counter again and is live once more.
// Leader: the live node with the lowest registration number (the longest-running process),
// so leadership does not move while the leader lives, and moves within deadAfterMs (plus one
// poll) when it dies. Views of different observers can differ for a moment, so every
// leader duty is idempotent and guarded by spool locks.
import { readHeartbeats, type Heartbeat } from './heartbeat.js';
import { leaderOf } from './observe.js';

export interface Member {
  hb: Heartbeat;
  live: boolean;
  /** Milliseconds since this observer last saw the node's counter advance. */
  sinceAdvanceMs: number;
}

export class Membership {
  private seen = new Map<string, { counter: number; seq: number; at: number }>();
  private readonly root: string;
  private readonly self: string;
  readonly deadAfterMs: number;
  private last: Member[] = [];

  constructor(o: { root: string; self: string; deadAfterMs: number }) {
    this.root = o.root;
    this.self = o.self;
    this.deadAfterMs = o.deadAfterMs;
  }

  async poll(): Promise<Member[]> {
    const now = performance.now();
    const hbs = await readHeartbeats(this.root);
    this.last = hbs.map((hb) => {
      const prev = this.seen.get(hb.node);
      // A new process (new seq) or an advanced counter both count as signs of life.
      if (!prev || prev.counter !== hb.counter || prev.seq !== hb.seq) this.seen.set(hb.node, { counter: hb.counter, seq: hb.seq, at: now });
      const at = this.seen.get(hb.node)!.at;
      // Before a full dead period has passed since we first looked, we cannot judge: a node we
      // have just started watching is given the benefit of the doubt.
      const sinceAdvanceMs = now - at;
      const live = hb.node === this.self || sinceAdvanceMs < this.deadAfterMs;
      return { hb, live, sinceAdvanceMs };
    });
    return this.last;
  }

  members(): Member[] {
    return this.last;
  }

  leader(): string | null {
    return leaderOf(this.last);
  }
}
