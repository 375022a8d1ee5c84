// intake start: run a node until SIGTERM/SIGINT, then stop gracefully (a second signal stops at once).
// Every configuration key is a flag here, generated from the one list below, so no option exists
// only as an environment variable (docs/operations.md, "Configuration", lists them all).
import type { Command } from 'commander';
import { DEFAULTS, ENV, flagOf, loadConfig, MODES, type Config, type RawConfig } from '../config.js';
import { IntakeNode } from '../node/node.js';

const SECRET_ADVICE = 'better given as the environment variable or in a file: a flag shows in ps and the shell history';

/** What each option does, and how its value is written in --help: [argument, meaning, default shown]. */
const OPTIONS: Record<keyof Config, [arg: string | null, help: string, shownDefault?: string]> = {
  port: ['<port>', 'HTTP port; 0: any free port'],
  host: ['<host>', 'address to listen on (0.0.0.0 behind a load balancer)'],
  spool: ['<dir>', 'spool root, shared by all nodes of a cluster'],
  db: ['<url>', 'database: sqlite:<path> or postgres://...'],
  mode: ['<mode>', MODES.join('|')],
  nodeId: ['<id>', 'node id, unique in the cluster', '<hostname>-<port>'],
  bodyLimitBytes: ['<n>', 'largest request body, else 413'],
  maxSegmentBytes: ['<n>', 'seal a segment at this size'],
  sealAfterMs: ['<n>', 'seal a segment this long after its first record'],
  scanIntervalMs: ['<n>', 'drainer rescan period'],
  lockStaleMs: ['<n>', 'a spool lock not refreshed this long is stale'],
  heartbeatMs: ['<n>', 'heartbeat period'],
  deadAfterMs: ['<n>', 'a node whose heartbeat stops this long is dead'],
  stopIdleMs: ['<n>', 'on SIGTERM keep serving until idle this long'],
  stopGraceMs: ['<n>', '... or at most this long'],
  shutdownTimeoutMs: ['<n>', 'a graceful stop that takes longer stops at once'],
  headersTimeoutMs: ['<n>', 'a client must send its headers within this, else 408'],
  requestTimeoutMs: ['<n>', '... and its whole request within this, else 408'],
  keepAliveTimeoutMs: ['<n>', 'close an idle keep-alive connection after this'],
  maxConnections: ['<n>', 'open connections at most; more are closed at once'],
  maxHeaderBytes: ['<n>', 'request line and headers at most, else 431'],
  maxHeaderCount: ['<n>', 'headers per request at most, else 431'],
  maxJsonDepth: ['<n>', 'nesting of arrays and objects in a JSON body at most, else 400'],
  archive: [null, 'keep drained segments under archive/ instead of deleting them'],
  archiveRetentionMs: ['<n>', 'the leader deletes older archived segments', '7 days'],
  scheduleGraceMs: ['<n>', "a schedule's tick found due later than this was missed by an outage: its --catch-up policy applies"],
  callbackAllowCidrs: ['<cidrs>', 'comma-separated CIDRs callbacks may reach although not public (e.g. 10.1.0.0/16)', 'none'],
  callbackConnectTimeoutMs: ['<n>', 'a callback connection must be made within this'],
  callbackTimeoutMs: ['<n>', 'a callback must be answered within this'],
  callbackBaseMs: ['<n>', 'first retry delay of a failed callback (doubling, with jitter)'],
  callbackCapMs: ['<n>', 'longest retry delay of a failed callback'],
  callbackMaxAttempts: ['<n>', 'attempts before a callback is dead'],
  callbackMaxAgeMs: ['<n>', 'a callback failing this long is dead', '3 days'],
  callbackPollMs: ['<n>', 'how often the dispatcher looks for callbacks to send'],
  webhookSecret: ['<secrets>', `signing secrets of the default tenant, space-separated, newest first; ${SECRET_ADVICE}`, 'one made by the first node'],
  webhookSecretsFile: ['<path>', 'JSON file {"tenant": ["whsec_new", "whsec_old"]} of signing secrets per tenant', 'none'],
  loopDelayWarnMs: ['<n>', "warn when the event loop's p99 delay over a window passes this"],
  booksFoldAfterMs: ['<n>', "the books fold segments drained longer ago than this into their node's checkpoint; 0: at once", '1 hour'],
  booksIntervalMs: ['<n>', "how often one save-mode node takes the books (intake verify's figures) for the intake_books_* metrics; 0: never", '60000'],
  maxWaitS: ['<n>', 'longest Prefer: wait=N or ?wait=N honoured, seconds; 0: never wait'],
  insecureNoAuth: [null, 'serve without API keys on a non-loopback address while the cluster has none'],
  logLevel: ['<level>', 'pino level: fatal, error, warn, info, debug, trace, silent'],
};

function describe(key: keyof Config): string {
  const [arg, help, shown] = OPTIONS[key];
  const dflt = shown ?? (arg === null ? undefined : String((DEFAULTS as Record<string, unknown>)[key]));
  return `${help} (env ${ENV[key]}${dflt === undefined ? '' : `, default ${dflt}`})`;
}

export function registerStart(program: Command): void {
  const start = program.command('start').description('run an intake node');
  for (const key of Object.keys(OPTIONS) as (keyof Config)[]) {
    const arg = OPTIONS[key][0];
    start.option(`${flagOf(key)}${arg ? ` ${arg}` : ''}`, describe(key));
  }
  start.action(async (opts: RawConfig) => {
    const node = new IntakeNode(loadConfig(opts));
    let signals = 0;
    const onSignal = (sig: string) => {
      signals++;
      if (signals > 1) {
        node.log.warn({ signal: sig }, 'second signal: stopping at once');
        process.exit(1);
      }
      node.log.info({ signal: sig }, 'stopping gracefully');
      node.close().then(
        () => process.exit(process.exitCode ?? 0),
        (err: unknown) => {
          node.log.error({ err }, 'graceful stop failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    await node.start();
  });
}
