// Configuration: parsed and validated once at start, then passed in. Every key has a CLI flag
// and an INTAKE_* environment variable (the flag wins).
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Errors } from './errors.js';
import { MAX_HEADER_COUNT_LIMIT } from './http/limits.js';
import { NODE_ID_PATTERN } from './spool/layout.js';

export const MODES = ['receive', 'save', 'both'] as const;
export type Mode = (typeof MODES)[number];

export interface Config {
  host: string;
  port: number;
  spool: string;
  db: string;
  mode: Mode;
  nodeId: string;
  bodyLimitBytes: number;
  maxSegmentBytes: number;
  sealAfterMs: number;
  scanIntervalMs: number;
  lockStaleMs: number;
  archive: boolean;
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  shutdownTimeoutMs: number;
  maxConnections: number;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  maxJsonDepth: number;
  heartbeatMs: number;
  deadAfterMs: number;
  stopGraceMs: number;
  stopIdleMs: number;
  archiveRetentionMs: number;
  /** A schedule's tick found due later than this was missed by an outage: its catch-up policy applies. */
  scheduleGraceMs: number;
  callbackAllowCidrs: string;
  callbackConnectTimeoutMs: number;
  callbackTimeoutMs: number;
  callbackBaseMs: number;
  callbackCapMs: number;
  callbackMaxAttempts: number;
  callbackMaxAgeMs: number;
  callbackPollMs: number;
  loopDelayWarnMs: number;
  maxWaitS: number;
  insecureNoAuth: boolean;
  logLevel: string;
}

/** Raw values as they come from commander (strings) or tests (any). */
export type RawConfig = Partial<Record<keyof Config, string | number | boolean | undefined>>;

export const ENV: Record<keyof Config, string> = {
  host: 'INTAKE_HOST',
  port: 'INTAKE_PORT',
  spool: 'INTAKE_SPOOL',
  db: 'INTAKE_DB',
  mode: 'INTAKE_MODE',
  nodeId: 'INTAKE_NODE_ID',
  bodyLimitBytes: 'INTAKE_BODY_LIMIT_BYTES',
  maxSegmentBytes: 'INTAKE_MAX_SEGMENT_BYTES',
  sealAfterMs: 'INTAKE_SEAL_AFTER_MS',
  scanIntervalMs: 'INTAKE_SCAN_INTERVAL_MS',
  lockStaleMs: 'INTAKE_LOCK_STALE_MS',
  archive: 'INTAKE_ARCHIVE',
  requestTimeoutMs: 'INTAKE_REQUEST_TIMEOUT_MS',
  headersTimeoutMs: 'INTAKE_HEADERS_TIMEOUT_MS',
  keepAliveTimeoutMs: 'INTAKE_KEEP_ALIVE_TIMEOUT_MS',
  shutdownTimeoutMs: 'INTAKE_SHUTDOWN_TIMEOUT_MS',
  maxConnections: 'INTAKE_MAX_CONNECTIONS',
  maxHeaderBytes: 'INTAKE_MAX_HEADER_BYTES',
  maxHeaderCount: 'INTAKE_MAX_HEADER_COUNT',
  maxJsonDepth: 'INTAKE_MAX_JSON_DEPTH',
  heartbeatMs: 'INTAKE_HEARTBEAT_MS',
  deadAfterMs: 'INTAKE_DEAD_AFTER_MS',
  stopGraceMs: 'INTAKE_STOP_GRACE_MS',
  stopIdleMs: 'INTAKE_STOP_IDLE_MS',
  archiveRetentionMs: 'INTAKE_ARCHIVE_RETENTION_MS',
  scheduleGraceMs: 'INTAKE_SCHEDULE_GRACE_MS',
  callbackAllowCidrs: 'INTAKE_CALLBACK_ALLOW_CIDRS',
  callbackConnectTimeoutMs: 'INTAKE_CALLBACK_CONNECT_TIMEOUT_MS',
  callbackTimeoutMs: 'INTAKE_CALLBACK_TIMEOUT_MS',
  callbackBaseMs: 'INTAKE_CALLBACK_BASE_MS',
  callbackCapMs: 'INTAKE_CALLBACK_CAP_MS',
  callbackMaxAttempts: 'INTAKE_CALLBACK_MAX_ATTEMPTS',
  callbackMaxAgeMs: 'INTAKE_CALLBACK_MAX_AGE_MS',
  callbackPollMs: 'INTAKE_CALLBACK_POLL_MS',
  loopDelayWarnMs: 'INTAKE_LOOP_DELAY_WARN_MS',
  maxWaitS: 'INTAKE_MAX_WAIT_S',
  insecureNoAuth: 'INTAKE_INSECURE_NO_AUTH',
  logLevel: 'INTAKE_LOG_LEVEL',
};

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  spool: './spool',
  db: 'sqlite:./data/intake.db',
  mode: 'both',
  bodyLimitBytes: 1024 * 1024,
  maxSegmentBytes: 16 * 1024 * 1024,
  sealAfterMs: 1000,
  scanIntervalMs: 500,
  lockStaleMs: 10_000,
  archive: false,
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 65_000,
  shutdownTimeoutMs: 30_000,
  // Far above what a load balancer keeps open to a node (ops/haproxy.cfg: maxconn 512 per
  // server), well below the file descriptors ops/intake.service allows (LimitNOFILE=65536),
  // which spool files, locks and database connections share.
  maxConnections: 10_000,
  // Node's own default; nginx's default header buffers (4 x 8k) pass nothing much larger.
  maxHeaderBytes: 16 * 1024,
  // Above HAProxy's 101 (tune.http.maxhdr) plus the few headers a load balancer adds, so what
  // it forwards passes; a browser or an SDK sends 10 to 30.
  maxHeaderCount: 128,
  // Deeper than any sensible document, far below what overflows a stack (JSON.stringify of the
  // payload: a few thousand levels) or PostgreSQL's jsonb parser.
  maxJsonDepth: 64,
  heartbeatMs: 1000,
  deadAfterMs: 3000,
  stopGraceMs: 5000,
  stopIdleMs: 1000,
  archiveRetentionMs: 7 * 24 * 3600 * 1000,
  scheduleGraceMs: 60_000,
  callbackAllowCidrs: '',
  callbackConnectTimeoutMs: 5000,
  callbackTimeoutMs: 15_000,
  callbackBaseMs: 1000,
  callbackCapMs: 3_600_000,
  callbackMaxAttempts: 15,
  callbackMaxAgeMs: 3 * 24 * 3600 * 1000,
  callbackPollMs: 500,
  loopDelayWarnMs: 50,
  // A synchronous answer longer than this is better a callback; and below the load balancer's
  // server timeout (ops/haproxy.cfg, ops/nginx.conf), which would cut a longer wait off.
  maxWaitS: 30,
  insecureNoAuth: false,
  logLevel: 'info',
} as const satisfies Omit<Config, 'nodeId'>;

function int(key: keyof Config, v: unknown, min: number, max: number): number {
  const n = typeof v === 'number' ? v : Number(String(v).trim());
  if (!Number.isInteger(n) || n < min || n > max) throw Errors.badConfig(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function bool(key: keyof Config, v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw Errors.badConfig(`${key} must be true or false, got ${JSON.stringify(v)}`);
}

export function loadConfig(raw: RawConfig, env: NodeJS.ProcessEnv = process.env): Config {
  const pick = (k: keyof Config): unknown => raw[k] ?? env[ENV[k]] ?? (DEFAULTS as Record<string, unknown>)[k];
  const mode = String(pick('mode'));
  if (!(MODES as readonly string[]).includes(mode)) throw Errors.badConfig(`mode must be one of ${MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  const port = int('port', pick('port'), 0, 65535);
  const nodeId = String(raw.nodeId ?? env[ENV.nodeId] ?? `${hostname().split('.')[0]}-${port}`);
  if (!NODE_ID_PATTERN.test(nodeId)) throw Errors.badConfig(`node id ${JSON.stringify(nodeId)} must match ${NODE_ID_PATTERN}`);
  const lockStaleMs = int('lockStaleMs', pick('lockStaleMs'), 2000, 3_600_000);
  const heartbeatMs = int('heartbeatMs', pick('heartbeatMs'), 50, 60_000);
  const deadAfterMs = int('deadAfterMs', pick('deadAfterMs'), 200, 600_000);
  const requestTimeoutMs = int('requestTimeoutMs', pick('requestTimeoutMs'), 100, 3_600_000);
  const headersTimeoutMs = int('headersTimeoutMs', pick('headersTimeoutMs'), 100, 3_600_000);
  // Node refuses to start a server whose headers may take longer than the whole request.
  if (headersTimeoutMs > requestTimeoutMs) throw Errors.badConfig(`headersTimeoutMs (${headersTimeoutMs}) must not be above requestTimeoutMs (${requestTimeoutMs})`);
  // A node must beat at least twice within the dead time, or a busy moment looks like death.
  if (deadAfterMs < 2 * heartbeatMs) throw Errors.badConfig(`deadAfterMs (${deadAfterMs}) must be at least twice heartbeatMs (${heartbeatMs})`);
  return {
    host: String(pick('host')),
    port,
    spool: resolve(String(pick('spool'))),
    db: String(pick('db')),
    mode: mode as Mode,
    nodeId,
    bodyLimitBytes: int('bodyLimitBytes', pick('bodyLimitBytes'), 1024, 64 * 1024 * 1024),
    maxSegmentBytes: int('maxSegmentBytes', pick('maxSegmentBytes'), 64 * 1024, 1024 * 1024 * 1024),
    sealAfterMs: int('sealAfterMs', pick('sealAfterMs'), 10, 3_600_000),
    scanIntervalMs: int('scanIntervalMs', pick('scanIntervalMs'), 10, 600_000),
    lockStaleMs,
    archive: bool('archive', pick('archive')),
    requestTimeoutMs,
    headersTimeoutMs,
    keepAliveTimeoutMs: int('keepAliveTimeoutMs', pick('keepAliveTimeoutMs'), 100, 3_600_000),
    shutdownTimeoutMs: int('shutdownTimeoutMs', pick('shutdownTimeoutMs'), 100, 3_600_000),
    maxConnections: int('maxConnections', pick('maxConnections'), 1, 1_000_000),
    maxHeaderBytes: int('maxHeaderBytes', pick('maxHeaderBytes'), 1024, 1024 * 1024),
    maxHeaderCount: int('maxHeaderCount', pick('maxHeaderCount'), 8, MAX_HEADER_COUNT_LIMIT),
    // At most 512: a callback body wraps a result a few levels deeper, and both engines must store it.
    maxJsonDepth: int('maxJsonDepth', pick('maxJsonDepth'), 1, 512),
    heartbeatMs,
    deadAfterMs,
    stopGraceMs: int('stopGraceMs', pick('stopGraceMs'), 0, 600_000),
    stopIdleMs: int('stopIdleMs', pick('stopIdleMs'), 0, 600_000),
    archiveRetentionMs: int('archiveRetentionMs', pick('archiveRetentionMs'), 1000, 10 * 365 * 24 * 3600 * 1000),
    scheduleGraceMs: int('scheduleGraceMs', pick('scheduleGraceMs'), 1000, 7 * 24 * 3600 * 1000),
    callbackAllowCidrs: String(pick('callbackAllowCidrs') ?? ''),
    callbackConnectTimeoutMs: int('callbackConnectTimeoutMs', pick('callbackConnectTimeoutMs'), 10, 600_000),
    callbackTimeoutMs: int('callbackTimeoutMs', pick('callbackTimeoutMs'), 10, 3_600_000),
    callbackBaseMs: int('callbackBaseMs', pick('callbackBaseMs'), 1, 3_600_000),
    callbackCapMs: int('callbackCapMs', pick('callbackCapMs'), 1, 7 * 24 * 3600 * 1000),
    callbackMaxAttempts: int('callbackMaxAttempts', pick('callbackMaxAttempts'), 1, 1000),
    callbackMaxAgeMs: int('callbackMaxAgeMs', pick('callbackMaxAgeMs'), 1000, 365 * 24 * 3600 * 1000),
    callbackPollMs: int('callbackPollMs', pick('callbackPollMs'), 10, 600_000),
    loopDelayWarnMs: int('loopDelayWarnMs', pick('loopDelayWarnMs'), 1, 600_000),
    maxWaitS: int('maxWaitS', pick('maxWaitS'), 0, 3600),
    insecureNoAuth: bool('insecureNoAuth', pick('insecureNoAuth')),
    logLevel: String(pick('logLevel')),
  };
}

export const accepts = (mode: Mode) => mode === 'receive' || mode === 'both';
export const saves = (mode: Mode) => mode === 'save' || mode === 'both';

/** Whether `host` only listens on this machine (an open node is safe there, and only there). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
