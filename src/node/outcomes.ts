// Where a callback outcome found by the failed-callback retrier goes: straight into the
// database when this node has it (save mode), otherwise as a record in this node's spool (a
// drainer applies it), so even a receive-mode node records facts for the database.
import type { Logger } from 'pino';
import { encodeRecord, RecordKind } from '../spool/format.js';
import type { CallbackOutcomeRecord } from '../spool/records.js';
import type { SpoolWriter } from '../spool/writer.js';
import type { Store } from '../store/store.js';

/** Returns false if neither could take it (the retrier then keeps the entry and tries again later). */
export async function recordOutcome(
  o: CallbackOutcomeRecord,
  where: { store: Store | null; writer: SpoolWriter | null; log: Logger },
): Promise<boolean> {
  const { store, writer, log } = where;
  if (store) {
    try {
      await store.recordCallbackOutcomes([o]);
      return true;
    } catch (err) {
      log.warn({ err, webhookId: o.id }, 'could not record a callback outcome in the database; spooling it');
    }
  }
  if (writer) {
    try {
      await writer.append(encodeRecord(RecordKind.callbackOutcome, JSON.stringify(o)));
      return true;
    } catch (err) {
      log.warn({ err, webhookId: o.id }, 'could not spool a callback outcome');
    }
  }
  log.warn({ webhookId: o.id, status: o.status }, 'callback outcome not recorded: no database or spool could take it');
  return false;
}
