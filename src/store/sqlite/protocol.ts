// Messages between the node and its SQLite thread.
import type { SyncStore } from './sync.js';

export interface Call {
  n: number;
  op: keyof SyncStore;
  args: unknown[];
}

/** An error as it crosses the thread boundary: what callers classify by (code, message), not its class. */
export interface ThreadError {
  name: string;
  message: string;
  code?: string;
  statusCode?: number;
  stack?: string;
}

export type Result = { n: number; ok: true; value: unknown } | { n: number; ok: false; error: ThreadError };

export function toThreadError(err: unknown): ThreadError {
  const e = err as Partial<ThreadError> & { message?: string };
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(typeof e?.statusCode === 'number' ? { statusCode: e.statusCode } : {}),
    ...(typeof e?.stack === 'string' ? { stack: e.stack } : {}),
  };
}
