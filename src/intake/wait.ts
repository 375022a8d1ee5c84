// Synchronous answers: how long a client asked to wait, and the wait itself.
// `Prefer: wait=N` (RFC 7240) on POST /v1/requests and `?wait=N` on GET /v1/requests/:id ask
// for an answer within N seconds, capped by --max-wait-s. A preference we cannot read is
// ignored, as RFC 7240 says; a bad `?wait` is the client's own query and gets a 400.
import { Errors } from '../errors.js';
import type { RouteContext } from '../http/context.js';
import type { StoredRequest } from '../store/store.js';

/** Seconds from a Prefer header (`wait=5`, `respond-async, wait=5`), capped; 0 when absent or unreadable. */
export function preferredWaitS(header: string | string[] | undefined, maxS: number): number {
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!text) return 0;
  const m = /(?:^|[,;\s])wait\s*=\s*"?(\d{1,9})"?\s*(?:$|[,;])/i.exec(text);
  return m ? Math.min(Number(m[1]), maxS) : 0;
}

/** Seconds from `?wait=N`, capped; 0 when absent. */
export function queryWaitS(v: unknown, maxS: number): number {
  if (v === undefined || v === '') return 0;
  if (typeof v !== 'string' || !/^\d{1,9}$/.test(v)) throw Errors.badRequest('wait must be a whole number of seconds');
  return Math.min(Number(v), maxS);
}

export type WaitOutcome = 'completed' | 'timeout' | 'stopping' | 'absent';

/**
 * Wait up to `ms` for the tenant's request `id` to be completed. The waiter is registered
 * before the store is read, so a completion between the read and the wait is not missed.
 * Resolves to the row as read last (null when it is not readable here) and why the wait ended:
 * 'absent' (not stored, or another tenant's, and `absent` says not to wait for it) at once.
 */
export async function waitForCompletion(
  ctx: RouteContext,
  o: { id: string; tenant: string; ms: number; absent: 'answer' | 'wait' },
): Promise<{ row: StoredRequest | null; ended: WaitOutcome }> {
  const read = async () => {
    const row = (await ctx.store()?.getRequest(o.id)) ?? null;
    return row && row.tenant === o.tenant ? row : null;
  };
  const w = ctx.waits.wait(o.id, o.ms);
  let row: StoredRequest | null;
  try {
    row = await read();
  } catch (err) {
    w.cancel();
    throw err;
  }
  if (row?.status === 'completed') {
    w.cancel();
    return { row, ended: 'completed' };
  }
  if (row === null && o.absent === 'answer') {
    w.cancel();
    return { row, ended: 'absent' };
  }
  const ended = await w.done;
  if (ended === 'stopping') return { row, ended }; // answered at once: the node is going away
  // Read again: the completed row (with its result), or the current state after the time ran out.
  // A store that went away meanwhile (the node left save mode) leaves what was read before.
  return { row: ctx.store() ? await read() : row, ended };
}
