// intake start: run a node until SIGTERM/SIGINT, then stop gracefully (a second signal stops at once).
import type { Command } from 'commander';
import { DEFAULTS, loadConfig, MODES, type RawConfig } from '../config.js';
import { IntakeNode } from '../node/node.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run an intake node')
    .option('--port <port>', `HTTP port (env INTAKE_PORT, default ${DEFAULTS.port})`)
    .option('--host <host>', `address to listen on (env INTAKE_HOST, default ${DEFAULTS.host})`)
    .option('--spool <dir>', `spool root, shared by all nodes of a cluster (env INTAKE_SPOOL, default ${DEFAULTS.spool})`)
    .option('--db <url>', `database: sqlite:<path> or postgres://... (env INTAKE_DB, default ${DEFAULTS.db})`)
    .option('--mode <mode>', `${MODES.join('|')} (env INTAKE_MODE, default ${DEFAULTS.mode})`)
    .option('--node-id <id>', 'node id, unique in the cluster (env INTAKE_NODE_ID, default <hostname>-<port>)')
    .option('--body-limit-bytes <n>', `largest request body (env INTAKE_BODY_LIMIT_BYTES, default ${DEFAULTS.bodyLimitBytes})`)
    .option('--max-segment-bytes <n>', `seal a segment at this size (env INTAKE_MAX_SEGMENT_BYTES, default ${DEFAULTS.maxSegmentBytes})`)
    .option('--seal-after-ms <n>', `seal a segment this long after its first record (env INTAKE_SEAL_AFTER_MS, default ${DEFAULTS.sealAfterMs})`)
    .option('--scan-interval-ms <n>', `drainer rescan period (env INTAKE_SCAN_INTERVAL_MS, default ${DEFAULTS.scanIntervalMs})`)
    .option('--lock-stale-ms <n>', `a spool lock not refreshed this long is stale (env INTAKE_LOCK_STALE_MS, default ${DEFAULTS.lockStaleMs})`)
    .option('--heartbeat-ms <n>', `heartbeat period (env INTAKE_HEARTBEAT_MS, default ${DEFAULTS.heartbeatMs})`)
    .option('--dead-after-ms <n>', `a node whose heartbeat stops this long is dead (env INTAKE_DEAD_AFTER_MS, default ${DEFAULTS.deadAfterMs})`)
    .option('--stop-idle-ms <n>', `on SIGTERM keep serving until idle this long (env INTAKE_STOP_IDLE_MS, default ${DEFAULTS.stopIdleMs})`)
    .option('--stop-grace-ms <n>', `... or at most this long (env INTAKE_STOP_GRACE_MS, default ${DEFAULTS.stopGraceMs})`)
    .option('--headers-timeout-ms <n>', `a client must send its headers within this (env INTAKE_HEADERS_TIMEOUT_MS, default ${DEFAULTS.headersTimeoutMs})`)
    .option('--request-timeout-ms <n>', `... and its whole request within this (env INTAKE_REQUEST_TIMEOUT_MS, default ${DEFAULTS.requestTimeoutMs})`)
    .option('--keep-alive-timeout-ms <n>', `close an idle keep-alive connection after this (env INTAKE_KEEP_ALIVE_TIMEOUT_MS, default ${DEFAULTS.keepAliveTimeoutMs})`)
    .option('--max-connections <n>', `open connections at most; more are closed at once (env INTAKE_MAX_CONNECTIONS, default ${DEFAULTS.maxConnections})`)
    .option('--max-header-bytes <n>', `request line and headers at most, else 431 (env INTAKE_MAX_HEADER_BYTES, default ${DEFAULTS.maxHeaderBytes})`)
    .option('--max-header-count <n>', `headers per request at most, else 431 (env INTAKE_MAX_HEADER_COUNT, default ${DEFAULTS.maxHeaderCount})`)
    .option('--max-json-depth <n>', `nesting of arrays and objects in a JSON body at most, else 400 (env INTAKE_MAX_JSON_DEPTH, default ${DEFAULTS.maxJsonDepth})`)
    .option('--archive', 'keep drained segments under archive/ instead of deleting them (env INTAKE_ARCHIVE)')
    .option('--archive-retention-ms <n>', `the leader deletes older archived segments (env INTAKE_ARCHIVE_RETENTION_MS, default 7 days)`)
    .option('--schedule-grace-ms <n>', `a schedule's tick found due later than this was missed by an outage: its --catch-up policy applies (env INTAKE_SCHEDULE_GRACE_MS, default ${DEFAULTS.scheduleGraceMs})`)
    .option('--loop-delay-warn-ms <n>', `warn when the event loop's p99 delay over a window passes this (env INTAKE_LOOP_DELAY_WARN_MS, default ${DEFAULTS.loopDelayWarnMs})`)
    .option('--max-wait-s <n>', `longest Prefer: wait=N or ?wait=N honoured, seconds; 0: never wait (env INTAKE_MAX_WAIT_S, default ${DEFAULTS.maxWaitS})`)
    .option('--insecure-no-auth', 'serve without API keys on a non-loopback address while the cluster has none (env INTAKE_INSECURE_NO_AUTH)')
    .option('--log-level <level>', `pino level (env INTAKE_LOG_LEVEL, default ${DEFAULTS.logLevel})`)
    .action(async (opts: RawConfig) => {
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
