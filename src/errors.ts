// One register of every error intake raises on purpose. Each has a stable code (found in logs,
// tests and docs/errors.md) and, where it reaches a client, the HTTP status decided here.

export class IntakeError extends Error {
  readonly code: string;
  readonly statusCode: number;
  /** Seconds a client should wait before retrying (sent as Retry-After), when the error is transient. */
  readonly retryAfterS: number | undefined;

  constructor(code: string, message: string, statusCode = 500, opts: { cause?: unknown; retryAfterS?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IntakeError';
    this.code = code;
    this.statusCode = statusCode;
    this.retryAfterS = opts.retryAfterS;
  }
}

type Maker = (message: string, opts?: { cause?: unknown; retryAfterS?: number }) => IntakeError;

function define(code: string, statusCode: number, defaultRetryAfterS?: number): Maker & { code: string } {
  const make = (message: string, opts: { cause?: unknown; retryAfterS?: number } = {}) =>
    new IntakeError(code, message, statusCode, {
      cause: opts.cause,
      retryAfterS: opts.retryAfterS ?? defaultRetryAfterS,
    });
  return Object.assign(make, { code });
}

export const Errors = {
  // client input (nothing is written)
  badJson: define('INTAKE_BAD_JSON', 400),
  badRequest: define('INTAKE_BAD_REQUEST', 400),
  badCallbackUrl: define('INTAKE_BAD_CALLBACK_URL', 400),
  badIdempotencyKey: define('INTAKE_BAD_IDEMPOTENCY_KEY', 400),
  unsupportedMediaType: define('INTAKE_UNSUPPORTED_MEDIA_TYPE', 415),
  bodyTooLarge: define('INTAKE_BODY_TOO_LARGE', 413),
  unauthorized: define('INTAKE_UNAUTHORIZED', 401),
  forbidden: define('INTAKE_FORBIDDEN', 403),
  notFound: define('INTAKE_NOT_FOUND', 404),
  routeNotFound: define('INTAKE_ROUTE_NOT_FOUND', 404),
  requestTimeout: define('INTAKE_REQUEST_TIMEOUT', 408),
  jsonTooDeep: define('INTAKE_JSON_TOO_DEEP', 400),
  /** A body whose bytes are not UTF-8: decoding would replace them, so they could not be kept as sent. */
  badUtf8: define('INTAKE_BAD_UTF8', 400),
  /** An object with one key twice: only one of its values could be kept. */
  jsonDuplicateKey: define('INTAKE_JSON_DUPLICATE_KEY', 400),
  /** A number a double cannot hold as written (1e400, 2^64): it would be kept as another number or null. */
  jsonInexactNumber: define('INTAKE_JSON_INEXACT_NUMBER', 400),
  headersTooLarge: define('INTAKE_HEADERS_TOO_LARGE', 431),
  urlTooLong: define('INTAKE_URL_TOO_LONG', 414),
  leaseConflict: define('INTAKE_LEASE_CONFLICT', 409),
  idempotencyConflict: define('INTAKE_IDEMPOTENCY_CONFLICT', 422),
  /** A cancel of a request a processor has already claimed or completed. */
  notCancellable: define('INTAKE_NOT_CANCELLABLE', 409),

  // this node cannot serve the request right now (the client retries, maybe on another node)
  spoolUnavailable: define('INTAKE_SPOOL_UNAVAILABLE', 503, 1),
  spoolFull: define('INTAKE_SPOOL_FULL', 507, 5),
  notAccepting: define('INTAKE_NOT_ACCEPTING', 503, 1),
  notSaveMode: define('INTAKE_NOT_SAVE_MODE', 503, 1),
  shuttingDown: define('INTAKE_SHUTTING_DOWN', 503, 1),
  storeUnavailable: define('INTAKE_STORE_UNAVAILABLE', 503, 1),

  // spool files (never reach a client; logged, counted, reported by `intake spool verify`)
  segmentCorrupt: define('INTAKE_SEGMENT_CORRUPT', 500),
  segmentVersionUnsupported: define('INTAKE_SEGMENT_VERSION_UNSUPPORTED', 500),
  /** An intact, valid record the database refused (a constraint, a value it cannot store): quarantined. */
  recordRefused: define('INTAKE_RECORD_REFUSED', 500),
  nodeIdInUse: define('INTAKE_NODE_ID_IN_USE', 500),
  /** A small shared file under cluster/ (secrets, keys, modes, schedules) is empty or not whole JSON. */
  sharedFileDamaged: define('INTAKE_SHARED_FILE_DAMAGED', 500),
  /** A spool lock (say on a shared file under cluster/) stayed held by a process that keeps refreshing it. */
  lockBusy: define('INTAKE_LOCK_BUSY', 500),

  // configuration and database
  badConfig: define('INTAKE_BAD_CONFIG', 500),
  /** `intake schedules add` refused a schedule (cron expression, tenant, lane, catch-up policy, payload). */
  badSchedule: define('INTAKE_BAD_SCHEDULE', 500),
  schemaUnsupported: define('INTAKE_SCHEMA_UNSUPPORTED', 500),
  internal: define('INTAKE_INTERNAL', 500),
} as const;

/** The JSON body every error answer carries. */
export function errorBody(err: IntakeError): { error: { code: string; message: string } } {
  return { error: { code: err.code, message: err.message } };
}
