// Reading a node's Prometheus text in tests: one sample, or the books (intake_books_*) as the
// same figures `intake verify --json` prints, so the two can be compared whole.
import type { Books } from '../../src/drain/books.js';
import { get } from './http.js';

/** The value of one sample (`name{labels} value`), or undefined. */
export function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

export const scrape = async (url: string): Promise<string> => (await get(`${url}/metrics`)).body as string;

/**
 * When the take of the books a scrape shows began (Unix seconds, -Infinity when none): a take is
 * stamped when it ends, so only one that began after an event has read everything after it.
 */
export function booksTakeBegan(text: string): number {
  return (sample(text, 'intake_books_taken_timestamp_seconds') ?? -Infinity) - (sample(text, 'intake_books_duration_seconds') ?? Infinity);
}

const PLACES = ['accepted', 'stored', 'in_spool', 'quarantined', 'damaged'] as const;
const CALLBACKS = ['completed', 'delivered', 'pending', 'parked', 'dead', 'gone'] as const;

/** The intake_books_* figures of a scrape, for the given spool nodes. */
export function booksMetrics(text: string, nodes: string[]) {
  const node = (n: string) => Object.fromEntries(PLACES.map((p) => [p, sample(text, 'intake_books_requests', `spool_node="${n}",place="${p}"`)]));
  return {
    nodes: Object.fromEntries(nodes.map((n) => [n, node(n)])),
    callbacks: Object.fromEntries(CALLBACKS.map((s) => [s, sample(text, 'intake_books_callbacks', `status="${s}"`)])),
    differences: sample(text, 'intake_books_differences'),
  };
}

/**
 * The same figures, from `intake verify --json`. The callbacks are counted here by hand, not by
 * src's callbackCounts (which the gauges use): otherwise the metrics would be compared with themselves.
 */
export function booksFigures(b: Books) {
  const c = b.callbacks;
  return {
    nodes: Object.fromEntries(b.nodes.map((n) => [n.node, { accepted: n.accepted, stored: n.stored, in_spool: n.inSpool, quarantined: n.quarantined, damaged: n.damaged }])),
    callbacks: { completed: c.completed, delivered: c.delivered, pending: c.pending + c.sending, parked: c.parked, dead: c.dead, gone: c.gone },
    differences: b.differences.length,
  };
}
