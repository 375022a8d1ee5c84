// The leader's duties (one live node runs them for the whole cluster): seal and hand over what
// dead nodes left open, and, once a minute, prune the archive and sweep temp files that crashed
// durable writes left behind. Run by the control loop while this node leads.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { pruneArchive, sealDeadNodes, sweepTempFiles } from '../cluster/duties.js';
import { StaleLocks } from '../spool/stale-locks.js';

/** A temp file of a small durable write older than this was left by a crash (a write takes milliseconds). */
const TEMP_FILE_MAX_AGE_MS = 3_600_000;
const HOUSEKEEPING_EVERY_MS = 60_000;

export class LeaderDuties {
  private lastHousekeeping = 0;
  private readonly c: Config;
  private readonly log: Logger;
  /** What this leader has seen of the node locks: a lock is stale only after it watched it stand still. */
  private readonly locks: StaleLocks;

  constructor(c: Config, log: Logger) {
    this.c = c;
    this.log = log;
    this.locks = new StaleLocks(c.lockStaleMs, log);
  }

  async run(): Promise<void> {
    const c = this.c;
    await sealDeadNodes(c.spool, c.nodeId, this.locks, this.log);
    if (Date.now() - this.lastHousekeeping > HOUSEKEEPING_EVERY_MS) {
      this.lastHousekeeping = Date.now();
      if (c.archive) await pruneArchive(c.spool, c.archiveRetentionMs, this.log);
      await sweepTempFiles(c.spool, TEMP_FILE_MAX_AGE_MS, this.log);
    }
  }
}
