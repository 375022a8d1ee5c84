// Configuration: parsed and validated once at start, then passed in. Every key has a CLI flag
// (--kebab-case of the key: flagOf) and an INTAKE_* environment variable (the flag wins). A bad
// value stops the start with INTAKE_BAD_CONFIG naming the flag and the variable, before
// anything is opened, listened on or written.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseCidr } from './callbacks/ssrf.js';
import { Errors } from './errors.js';
import { MAX_HEADER_COUNT_LIMIT } from './http/limits.js';
import { NODE_ID_PATTERN } from './spool/layout.js';
import { parseDbUrl } from './store/db-url.js';

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
  /** Comma-separated CIDRs callbacks may reach although they are not public (checked at start). */
  callbackAllowCidrs: string;
  /** Signing secrets of the default tenant, space-separated (newest first); '' for none. */
  webhookSecret: string;
  /** A JSON file {"tenant": ["whsec_new", "whsec_old"]}; '' for none. Wins over webhookSecret. */
  webhookSecretsFile: string;
  callbackConnectTimeoutMs: number;
  callbackTimeoutMs: number;
  callbackBaseMs: number;
  callbackCapMs: number;
  callbackMaxAttempts: number;
  callbackMaxAgeMs: number;
  callbackPollMs: number;
  loopDelayWarnMs: number;
  booksIntervalMs: number;
  booksFoldAfterMs: number;
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
  webhookSecret: 'INTAKE_WEBHOOK_SECRET',
  webhookSecretsFile: 'INTAKE_WEBHOOK_SECRETS_FILE',
  callbackConnectTimeoutMs: 'INTAKE_CALLBACK_CONNECT_TIMEOUT_MS',
  callbackTimeoutMs: 'INTAKE_CALLBACK_TIMEOUT_MS',
  callbackBaseMs: 'INTAKE_CALLBACK_BASE_MS',
  callbackCapMs: 'INTAKE_CALLBACK_CAP_MS',
  callbackMaxAttempts: 'INTAKE_CALLBACK_MAX_ATTEMPTS',
  callbackMaxAgeMs: 'INTAKE_CALLBACK_MAX_AGE_MS',
  callbackPollMs: 'INTAKE_CALLBACK_POLL_MS',
  loopDelayWarnMs: 'INTAKE_LOOP_DELAY_WARN_MS',
  booksIntervalMs: 'INTAKE_BOOKS_INTERVAL_MS',
  booksFoldAfterMs: 'INTAKE_BOOKS_FOLD_AFTER_MS',
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
  webhookSecret: '',
  webhookSecretsFile: '',
  callbackConnectTimeoutMs: 5000,
  callbackTimeoutMs: 15_000,
  callbackBaseMs: 1000,
  callbackCapMs: 3_600_000,
  callbackMaxAttempts: 15,
  callbackMaxAgeMs: 3 * 24 * 3600 * 1000,
  callbackPollMs: 500,
  loopDelayWarnMs: 50,
  booksIntervalMs: 60_000,
  booksFoldAfterMs: 3_600_000,
  // A synchronous answer longer than this is better a callback; and below the load balancer's
  // server timeout (ops/haproxy.cfg, ops/nginx.conf), which would cut a longer wait off.
  maxWaitS: 30,
  insecureNoAuth: false,
  logLevel: 'info',
} as const satisfies Omit<Config, 'nodeId'>;

/** The command-line flag of a key: nodeId -> --node-id, maxWaitS -> --max-wait-s (commander's own mapping, reversed). */
export const flagOf = (key: keyof Config): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** How an error names an option: both ways of giving it. */
export const optionName = (key: keyof Config): string => `${flagOf(key)} (${ENV[key]})`;

const bad = (key: keyof Config, problem: string) => Errors.badConfig(`${optionName(key)} ${problem}`);

function int(key: keyof Config, v: unknown, min: number, max: number): number {
  const n = typeof v === 'number' ? v : String(v).trim() === '' ? NaN : Number(String(v).trim());
  if (!Number.isInteger(n) || n < min || n > max) throw bad(key, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function bool(key: keyof Config, v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw bad(key, `must be true or false, got ${JSON.stringify(v)}`);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
// A listen address: an IP address or a host name (RFC 1123 labels).
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
// Standard Webhooks: whsec_ and 24 to 64 random bytes in base64.
const SECRET = /^(?:whsec_)?[A-Za-z0-9+/]+={0,2}$/;

function webhookSecret(key: 'webhookSecret' | 'webhookSecretsFile', s: unknown, where: string): string {
  if (typeof s !== 'string' || !SECRET.test(s)) throw bad(key, `${where}: a secret must be whsec_ and base64`);
  const bytes = Buffer.from(s.replace(/^whsec_/, ''), 'base64').length;
  if (bytes < 24 || bytes > 64) throw bad(key, `${where}: a secret must hold 24 to 64 bytes, this one holds ${bytes}`);
  return s;
}

/** The secrets file, read and checked once at start: {"tenant": ["whsec_…", …]}. */
export function readWebhookSecretsFile(path: string): Record<string, string[]> {
  let map: unknown;
  try {
    map = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw bad('webhookSecretsFile', `cannot be read as JSON: ${(err as Error).message}`);
  }
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw bad('webhookSecretsFile', 'must hold a JSON object {"tenant": ["whsec_…"]}');
  for (const [tenant, list] of Object.entries(map)) {
    if (!Array.isArray(list) || list.length === 0) throw bad('webhookSecretsFile', `tenant ${JSON.stringify(tenant)}: must be a non-empty array of secrets`);
    list.forEach((s: unknown, i) => webhookSecret('webhookSecretsFile', s, `tenant ${JSON.stringify(tenant)}, secret ${i + 1}`));
  }
  return map as Record<string, string[]>;
}

export function loadConfig(raw: RawConfig, env: NodeJS.ProcessEnv = process.env): Config {
  const pick = (k: keyof Config): unknown => raw[k] ?? env[ENV[k]] ?? (DEFAULTS as Record<string, unknown>)[k];
  const text = (k: keyof Config): string => String(pick(k) ?? '').trim();
  const mode = text('mode');
  if (!(MODES as readonly string[]).includes(mode)) throw bad('mode', `must be one of ${MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  const port = int('port', pick('port'), 0, 65535);
  const host = text('host');
  if (isIP(host) === 0 && !HOST_NAME.test(host)) throw bad('host', `must be an IP address or a host name, got ${JSON.stringify(host)}`);
  const nodeId = String(raw.nodeId ?? env[ENV.nodeId] ?? `${hostname().split('.')[0]}-${port}`);
  if (!NODE_ID_PATTERN.test(nodeId)) throw bad('nodeId', `${JSON.stringify(nodeId)} must match ${NODE_ID_PATTERN}`);
  const spool = text('spool');
  if (spool === '') throw bad('spool', 'must name a directory');
  const db = text('db');
  try {
    parseDbUrl(db);
  } catch (err) {
    throw bad('db', (err as Error).message);
  }
  const logLevel = text('logLevel');
  if (!LOG_LEVELS.includes(logLevel)) throw bad('logLevel', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  const callbackAllowCidrs = text('callbackAllowCidrs');
  for (const cidr of callbackAllowCidrs.split(',').map((x) => x.trim()).filter(Boolean)) {
    try {
      parseCidr(cidr);
    } catch (err) {
      throw bad('callbackAllowCidrs', (err as Error).message);
    }
  }
  const webhookSecrets = text('webhookSecret');
  const webhookSecretsFile = text('webhookSecretsFile');
  if (webhookSecrets && webhookSecretsFile) throw bad('webhookSecret', `and ${optionName('webhookSecretsFile')} are both given: give one`);
  webhookSecrets.split(/\s+/).filter(Boolean).forEach((s, i) => webhookSecret('webhookSecret', s, `secret ${i + 1}`));
  if (webhookSecretsFile) readWebhookSecretsFile(webhookSecretsFile);
  const callbackBaseMs = int('callbackBaseMs', pick('callbackBaseMs'), 1, 3_600_000);
  const callbackCapMs = int('callbackCapMs', pick('callbackCapMs'), 1, 7 * 24 * 3600 * 1000);
  if (callbackCapMs < callbackBaseMs) throw bad('callbackCapMs', `(${callbackCapMs}) must not be below ${optionName('callbackBaseMs')} (${callbackBaseMs})`);
  const lockStaleMs = int('lockStaleMs', pick('lockStaleMs'), 2000, 3_600_000);
  const booksIntervalMs = int('booksIntervalMs', pick('booksIntervalMs'), 0, 24 * 3600 * 1000);
  // Reading every spool file back to back is no interval: 0 turns the books off.
  if (booksIntervalMs > 0 && booksIntervalMs < 100) throw bad('booksIntervalMs', `must be 0 (never) or from 100 to ${24 * 3600 * 1000}, got ${booksIntervalMs}`);
  const heartbeatMs = int('heartbeatMs', pick('heartbeatMs'), 50, 60_000);
  const deadAfterMs = int('deadAfterMs', pick('deadAfterMs'), 200, 600_000);
  const requestTimeoutMs = int('requestTimeoutMs', pick('requestTimeoutMs'), 100, 3_600_000);
  const headersTimeoutMs = int('headersTimeoutMs', pick('headersTimeoutMs'), 100, 3_600_000);
  // Node refuses to start a server whose headers may take longer than the whole request.
  if (headersTimeoutMs > requestTimeoutMs) throw bad('headersTimeoutMs', `(${headersTimeoutMs}) must not be above ${optionName('requestTimeoutMs')} (${requestTimeoutMs})`);
  // A node must beat at least twice within the dead time, or a busy moment looks like death.
  if (deadAfterMs < 2 * heartbeatMs) throw bad('deadAfterMs', `(${deadAfterMs}) must be at least twice ${optionName('heartbeatMs')} (${heartbeatMs})`);
  return {
    host,
    port,
    spool: resolve(spool),
    db,
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
    callbackAllowCidrs,
    webhookSecret: webhookSecrets,
    webhookSecretsFile: webhookSecretsFile === '' ? '' : resolve(webhookSecretsFile),
    callbackConnectTimeoutMs: int('callbackConnectTimeoutMs', pick('callbackConnectTimeoutMs'), 10, 600_000),
    callbackTimeoutMs: int('callbackTimeoutMs', pick('callbackTimeoutMs'), 10, 3_600_000),
    callbackBaseMs,
    callbackCapMs,
    callbackMaxAttempts: int('callbackMaxAttempts', pick('callbackMaxAttempts'), 1, 1000),
    callbackMaxAgeMs: int('callbackMaxAgeMs', pick('callbackMaxAgeMs'), 1000, 365 * 24 * 3600 * 1000),
    callbackPollMs: int('callbackPollMs', pick('callbackPollMs'), 10, 600_000),
    loopDelayWarnMs: int('loopDelayWarnMs', pick('loopDelayWarnMs'), 1, 600_000),
    booksIntervalMs,
    booksFoldAfterMs: int('booksFoldAfterMs', pick('booksFoldAfterMs'), 0, 365 * 24 * 3600 * 1000),
    maxWaitS: int('maxWaitS', pick('maxWaitS'), 0, 3600),
    insecureNoAuth: bool('insecureNoAuth', pick('insecureNoAuth')),
    logLevel,
  };
}

export const accepts = (mode: Mode) => mode === 'receive' || mode === 'both';
export const saves = (mode: Mode) => mode === 'save' || mode === 'both';

/** Whether `host` only listens on this machine (an open node is safe there, and only there). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
