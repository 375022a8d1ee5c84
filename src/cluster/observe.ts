// One-shot observation for the CLI: watch heartbeats long enough to judge each node. A node
// whose counter advances is live; one whose counter stays still for deadAfterMs is dead.
import { Membership, type Member } from './membership.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function observe(root: string, deadAfterMs: number, pollMs = 200): Promise<Member[]> {
  const m = new Membership({ root, self: '', deadAfterMs });
  const first = new Map((await m.poll()).map((x) => [x.hb.node, x.hb.counter]));
  const deadline = performance.now() + deadAfterMs + pollMs;
  const advanced = new Set<string>();
  for (;;) {
    await sleep(pollMs);
    const members = await m.poll();
    for (const x of members) if (first.get(x.hb.node) !== x.hb.counter) advanced.add(x.hb.node);
    if (members.every((x) => advanced.has(x.hb.node)) || performance.now() > deadline) {
      return members.map((x) => ({ ...x, live: advanced.has(x.hb.node) }));
    }
  }
}

/** The leader as every node computes it: the live member with the lowest registration number. */
export function leaderOf(members: Member[]): string | null {
  let best: Member | null = null;
  for (const m of members) if (m.live && (!best || m.hb.seq < best.hb.seq)) best = m;
  return best?.hb.node ?? null;
}

/**
 * The node that runs the schedules: the leader when it accepts requests (receive or both mode:
 * it has a spool writer to put the ticks' requests on), else the live accepting node with the
 * lowest registration number. Null when no live node accepts.
 */
export function schedulerOf(members: Member[]): string | null {
  let best: Member | null = null;
  for (const m of members) if (m.live && m.hb.mode !== 'save' && (!best || m.hb.seq < best.hb.seq)) best = m;
  return best?.hb.node ?? null;
}
