// Prometheus metrics of one node. A registry per node (not prom-client's global one) so tests can
// run several nodes in one process. Names carry their unit (docs/operations.md lists them).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(opts: { defaults?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaults) collectDefaultMetrics({ register: registry, prefix: 'intake_process_' });
  const m = {
    registry,
    requests: new Counter({
      name: 'intake_requests_total',
      help: 'Client requests to POST /v1/requests by outcome (accepted or an error code)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    fsyncSeconds: new Histogram({
      name: 'intake_spool_fsync_seconds',
      help: 'Time of one group-commit write + fdatasync',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    batchRecords: new Histogram({
      name: 'intake_spool_batch_records',
      help: 'Records covered by one fdatasync (group commit)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers: [registry],
    }),
    spoolErrors: new Counter({
      name: 'intake_spool_write_errors_total',
      help: 'Failed spool writes or syncs; each fails its whole batch',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    segmentsSealed: new Counter({ name: 'intake_spool_segments_sealed_total', help: 'Segments sealed by this node', registers: [registry] }),
    drainRecords: new Counter({
      name: 'intake_drain_records_total',
      help: 'Records drained into the database (inserted, or already present)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    drainSegments: new Counter({ name: 'intake_drain_segments_total', help: 'Segments drained and removed', registers: [registry] }),
    drainErrors: new Counter({ name: 'intake_drain_errors_total', help: 'Drain attempts that failed and will be retried', registers: [registry] }),
    quarantined: new Counter({
      name: 'intake_quarantine_total',
      help: 'Byte ranges or files moved to quarantine/',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    workItems: new Counter({
      name: 'intake_work_items_total',
      help: 'Processing API items by operation (claim, complete, release) and outcome (ok, conflict, not-found)',
      labelNames: ['op', 'outcome'] as const,
      registers: [registry],
    }),
    workBatch: new Histogram({
      name: 'intake_work_batch_items',
      help: 'Items (or merged claims) per store call of the processing API: its group commit',
      labelNames: ['op'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
      registers: [registry],
    }),
    eventLoopDelaySeconds: new Gauge({
      name: 'intake_event_loop_delay_seconds',
      help: 'Event-loop delay of this node over the last monitoring window, by quantile (p50, p99, max)',
      labelNames: ['quantile'] as const,
      registers: [registry],
    }),
    waiting: new Gauge({ name: 'intake_requests_waiting', help: 'Clients waiting for a completion (Prefer: wait, ?wait=N) on this node', registers: [registry] }),
    backlogSegments: new Gauge({ name: 'intake_spool_backlog_segments', help: 'Sealed segments waiting under the spool root (last scan)', registers: [registry] }),
    httpClientErrors: new Counter({
      name: 'intake_http_client_errors_total',
      help: 'Requests refused by the HTTP layer before any route (timeouts, oversized headers, malformed HTTP), by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    callbacks: new Counter({
      name: 'intake_callbacks_total',
      help: 'Callback attempts by outcome: delivered, gone (410), parked (retried later), dead (out of attempts)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    callbackFailures: new Counter({
      name: 'intake_callback_failures_total',
      help: 'Failed callback attempts by class: http_4xx, http_5xx, http_other, timeout, connection, blocked, bad_url',
      labelNames: ['class'] as const,
      registers: [registry],
    }),
    callbackSendSeconds: new Histogram({
      name: 'intake_callback_send_seconds',
      help: 'Time of one callback attempt (connect, send, answer), whatever its outcome',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    workRequests: new Gauge({
      name: 'intake_work_requests',
      help: 'Requests in the database not finished yet, by status (pending, scheduled, claimed); refreshed every few seconds by save-mode nodes',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    outboxCallbacks: new Gauge({
      name: 'intake_outbox_callbacks',
      help: 'Callbacks in the database not delivered yet, by status (pending, sending, parked, dead); refreshed every few seconds by save-mode nodes',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    // The books (intake verify's figures) as cluster/books.json last held them: every node
    // exports the same figures, so take max() over nodes, never sum().
    booksRequests: new Gauge({
      name: 'intake_books_requests',
      help: 'Accepted request records of each spool node by where they are: accepted = stored + in_spool + quarantined; damaged counts byte ranges of unknown content',
      labelNames: ['spool_node', 'place'] as const,
      registers: [registry],
    }),
    booksCallbacks: new Gauge({
      name: 'intake_books_callbacks',
      help: 'Callbacks of the books: completed = delivered + pending + parked + dead + gone',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    booksDifferences: new Gauge({ name: 'intake_books_differences', help: 'Differences the last books found (0: they balance; intake verify names each)', registers: [registry] }),
    booksTakenSeconds: new Gauge({ name: 'intake_books_taken_timestamp_seconds', help: 'When the last books were taken (Unix time, the taking node\'s clock)', registers: [registry] }),
    booksDurationSeconds: new Gauge({ name: 'intake_books_duration_seconds', help: 'How long taking the last books took (reading every spool file, counting the tables)', registers: [registry] }),
    connectionsDropped: new Counter({
      name: 'intake_http_connections_dropped_total',
      help: 'Connections closed at once because the node had --max-connections open',
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Running totals of this node that the dashboard turns into rates (they travel in its heartbeat). */
export interface RateCounters {
  drained: number;
  completed: number;
  callbacksDelivered: number;
  callbacksFailed: number;
}

/** Sum of a counter's series whose labels match `where`. */
async function sum(c: Counter<string>, where: Record<string, string> = {}): Promise<number> {
  const { values } = await c.get();
  return values.filter((v) => Object.entries(where).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}

export async function rateCounters(m: Metrics): Promise<RateCounters> {
  const delivered = await sum(m.callbacks, { outcome: 'delivered' });
  return {
    drained: await sum(m.drainRecords),
    completed: await sum(m.workItems, { op: 'complete', outcome: 'ok' }),
    callbacksDelivered: delivered,
    callbacksFailed: (await sum(m.callbacks)) - delivered,
  };
}
