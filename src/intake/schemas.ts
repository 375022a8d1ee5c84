// OpenAPI schemas of the client routes (requests, cancels) and the operations routes (health,
// readiness, cluster, metrics). They document only: validate.ts and the routes check the input
// (src/http/openapi.ts says why fastify never validates or serialises with them).
import { errorResponses } from '../http/openapi.js';

const id = { type: 'string', description: 'the request id (a UUID)', examples: ['0192f0c1-7a3b-7c4d-8e5f-0123456789ab'] } as const;
const idParams = { type: 'object', required: ['id'], properties: { id } } as const;
const instant = { type: 'string', format: 'date-time' } as const;
const nullableInstant = { type: ['string', 'null'], format: 'date-time' } as const;
const anyJson = { description: 'any JSON value' } as const;
const nullableObject = { type: ['object', 'null'], additionalProperties: true } as const;

const notAccepting = {
  503: 'INTAKE_NOT_ACCEPTING, INTAKE_SPOOL_UNAVAILABLE, INTAKE_SHUTTING_DOWN: this node cannot take it now; retry (Retry-After), on any node',
  507: 'INTAKE_SPOOL_FULL: the spool is out of space; retry later (Retry-After)',
};
const notSaveMode = { 503: 'INTAKE_NOT_SAVE_MODE, INTAKE_STORE_UNAVAILABLE: this node does not read the database now; ask a save-mode node' };

export const submitSchema = {
  tags: ['requests'],
  summary: 'Submit a request',
  description:
    'Answers 202 only once the request is on stable storage. With an Idempotency-Key a retry (through any node) gets the same id; with `Prefer: wait=N` the answer may wait for the result (docs/callbacks.md, "Synchronous answers").',
  headers: {
    type: 'object',
    properties: {
      'idempotency-key': { type: 'string', minLength: 1, maxLength: 255, description: 'printable ASCII; the id is derived from the tenant and this key' },
      prefer: { type: 'string', description: '`wait=N`: wait up to N seconds (capped by --max-wait-s) for the result', examples: ['wait=10'] },
    },
  },
  body: {
    type: 'object',
    required: ['payload', 'callback_url'],
    additionalProperties: false,
    properties: {
      payload: { description: 'any JSON value but null: the work to do' },
      callback_url: { type: 'string', format: 'uri', maxLength: 2048, description: 'http(s) URL the result is sent to (public addresses only unless an operator allows a range)' },
      lane: { type: ['string', 'null'], pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$', description: 'claims go round-robin across lanes' },
      not_before: { ...nullableInstant, description: 'not claimable before this instant (RFC 3339 with a zone); not with delay_seconds' },
      delay_seconds: { type: ['integer', 'null'], minimum: 0, maximum: 31_536_000, description: 'not claimable for this long; not with not_before' },
      metadata: { ...nullableObject, description: 'up to 16 KiB, given back to processors' },
    },
  },
  response: {
    200: {
      description: 'completed within the `Prefer: wait=N` time',
      type: 'object',
      required: ['id', 'status', 'result'],
      properties: { id, status: { const: 'completed' }, result: anyJson },
    },
    202: {
      description: 'accepted: on stable storage',
      type: 'object',
      required: ['id', 'status_url'],
      properties: { id, status_url: { type: 'string', examples: ['/v1/requests/0192f0c1-7a3b-7c4d-8e5f-0123456789ab'] } },
    },
    ...errorResponses({
      400: 'INTAKE_BAD_REQUEST, INTAKE_BAD_CALLBACK_URL, INTAKE_BAD_IDEMPOTENCY_KEY, INTAKE_BAD_JSON, INTAKE_JSON_TOO_DEEP: refused; nothing was written',
      422: 'INTAKE_IDEMPOTENCY_CONFLICT: this Idempotency-Key was used for a different request',
      ...notAccepting,
    }),
  },
} as const;

const callbackState = {
  type: ['object', 'null'],
  description: 'the callback of a completed request',
  properties: {
    webhook_id: { type: 'string' },
    status: { enum: ['pending', 'sending', 'delivered', 'parked', 'dead', 'gone'] },
    attempts: { type: 'integer' },
    last_status: { type: ['integer', 'null'] },
    last_error: { type: ['string', 'null'] },
    updated_at: instant,
  },
} as const;

export const readSchema = {
  tags: ['requests'],
  summary: 'Read a request',
  description: 'A request is readable once it reached the database (about a second after its 202). `?wait=N` is a long poll: the answer comes as soon as it is completed, or after N seconds.',
  params: idParams,
  querystring: {
    type: 'object',
    properties: { wait: { type: 'string', pattern: '^\\d{1,9}$', description: 'seconds to wait for the completion (capped by --max-wait-s)' } },
  },
  response: {
    200: {
      description: 'the request as stored',
      type: 'object',
      properties: {
        id,
        status: { enum: ['scheduled', 'pending', 'claimed', 'completed', 'cancelled'] },
        received_at: instant,
        stored_at: instant,
        node_id: { type: 'string' },
        callback_url: { type: 'string' },
        lane: { type: ['string', 'null'] },
        not_before: nullableInstant,
        idempotency_key: { type: ['string', 'null'] },
        payload: anyJson,
        metadata: nullableObject,
        attempts: { type: 'integer' },
        result: anyJson,
        completed_at: nullableInstant,
        callback: callbackState,
      },
    },
    ...errorResponses({
      400: 'INTAKE_BAD_REQUEST: wait is not a whole number of seconds',
      404: 'INTAKE_NOT_FOUND: not in the database (yet), or another tenant\'s',
      ...notSaveMode,
    }),
  },
} as const;

export const cancelSchema = {
  tags: ['requests'],
  summary: 'Cancel a request',
  description: 'Possible until a processor claims it, even while the request is still in the spool (docs/requests.md).',
  params: idParams,
  response: {
    200: { description: 'cancelled (again 200 for a request cancelled before)', type: 'object', properties: { id, status: { const: 'cancelled' } } },
    202: { description: 'a cancel record is on stable storage; the drainer applies it', type: 'object', properties: { id, status: { const: 'cancelling' } } },
    ...errorResponses({
      404: 'INTAKE_NOT_FOUND: no such request of this tenant',
      409: 'INTAKE_NOT_CANCELLABLE: claimed or completed already',
      ...notAccepting,
    }),
  },
} as const;

const nodeStatus = { type: 'object', properties: { status: { type: 'string' }, node: { type: 'string' } } } as const;

export const healthzSchema = {
  tags: ['operations'],
  summary: 'Liveness: the process runs',
  response: { 200: { ...nodeStatus, description: 'alive', properties: { ...nodeStatus.properties, status: { const: 'ok' } } } },
} as const;

const readiness = { ...nodeStatus, properties: { ...nodeStatus.properties, role: { enum: ['ingest', 'work'] }, reason: { type: 'string' } } } as const;

export const readyzSchema = {
  tags: ['operations'],
  summary: "Readiness: the load balancer's check for one role",
  querystring: { type: 'object', properties: { role: { enum: ['ingest', 'work'], default: 'ingest' } } },
  response: {
    200: { ...readiness, description: 'this node serves the role and is not drained' },
    503: { ...readiness, description: 'not ready for this role: its mode, a drain, stopping, or an unwritable spool (reason)' },
    ...errorResponses({ 400: 'INTAKE_BAD_REQUEST: role must be ingest or work' }),
  },
} as const;

export const clusterSchema = {
  tags: ['operations'],
  summary: 'The cluster as this node sees it',
  description: 'Nodes, modes, leader and backlog, liveness judged by this node\'s clock (as `intake status --json`).',
  response: {
    200: {
      description: 'the cluster',
      type: 'object',
      properties: {
        leader: { type: ['string', 'null'] },
        generation: { type: 'integer' },
        nodes: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              live: { type: 'boolean' },
              leader: { type: 'boolean' },
              mode: { type: 'string' },
              mode_error: { type: ['string', 'null'] },
              version: { type: 'string' },
              ready: { type: 'boolean' },
              drained: { type: 'boolean' },
              backlog_segments: { type: 'integer' },
              accepted: { type: 'integer' },
              heartbeat_age_ms: { type: 'integer' },
              started_at: instant,
              url: { type: 'string' },
            },
          },
        },
        counters: {
          type: 'object',
          description: "each node's running totals from its heartbeat (accepted, drained, completed, callbacks delivered and failed) and its uptime, by node id",
          additionalProperties: { type: 'object', additionalProperties: { type: 'integer' } },
        },
        books: {
          description: 'the latest books (intake verify\'s figures), taken by one save-mode node every --books-interval-ms; null before the first',
          type: ['object', 'null'],
          properties: {
            taken_at: instant,
            taken_by: { type: 'string' },
            duration_ms: { type: 'integer' },
            balanced: { type: 'boolean' },
            difference_count: { type: 'integer' },
            differences: { type: 'array', items: { type: 'string' }, description: 'the first 10' },
            total: { type: 'object', additionalProperties: { type: 'integer' }, description: 'accepted = stored + in_spool + quarantined; damaged' },
            callbacks: { type: 'object', additionalProperties: { type: 'integer' }, description: 'completed = delivered + pending + parked + dead + gone' },
          },
        },
        schema: {
          description: "the database's schema as this node's store reads it: {current, latest}, {error} when it does not answer within 2 s, null in receive mode",
          type: ['object', 'null'],
          properties: { current: { type: 'integer' }, latest: { type: 'integer' }, error: { type: 'string' } },
        },
      },
    },
  },
} as const;

export const dashboardAuthSchema = {
  tags: ['operations'],
  summary: 'Whether the dashboard must ask for an admin key',
  response: { 200: { description: 'true once the cluster has keys', type: 'object', properties: { key_required: { type: 'boolean' } } } },
} as const;

/** One static file of the dashboard (public; it holds no data: the page asks the admin routes). */
export function dashboardFileSchema(file: string, type: string) {
  return {
    tags: ['operations'],
    summary: file === 'index.html' ? 'The operator dashboard (docs/operations.md, "Dashboard")' : `The dashboard's ${file}`,
    response: { 200: { description: file, content: { [type.split(';')[0]!]: { schema: { type: 'string' } } } } },
  };
}

export const metricsSchema = {
  tags: ['operations'],
  summary: 'Prometheus metrics of this node',
  response: { 200: { description: 'Prometheus text format (docs/operations.md, "Metrics")', content: { 'text/plain': { schema: { type: 'string' } } } } },
} as const;
