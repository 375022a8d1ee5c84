// Completions through any node of a PostgreSQL cluster: one dedicated client per node LISTENs on
// the channel that every completion notifies in its own transaction (work-sql.ts). A lost
// connection is made again with backoff; while it is down, notifications are lost, so the
// caller is told (onDown/onUp) and polls for what it waits for until a poll has run after the
// listener came back.
import pg from 'pg';
import { COMPLETED_CHANNEL } from './work-sql.js';

export interface CompletionListener {
  /** True while LISTEN is in effect: every completion from now on is heard. */
  readonly listening: boolean;
  close(): Promise<void>;
}

export interface ListenOptions {
  onCompleted: (ids: string[]) => void;
  /** The listener lost its connection: completions may be missed until onUp. */
  onDown: () => void;
  /** LISTEN is in effect again. */
  onUp: () => void;
  onError: (err: Error) => void;
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

export function listenForCompletions(url: string, o: ListenOptions): CompletionListener {
  let client: pg.Client | null = null;
  let listening = false;
  let closed = false;
  let delay = RECONNECT_MIN_MS;
  let timer: NodeJS.Timeout | null = null;

  const lost = (c: pg.Client, err?: Error) => {
    if (client !== c) return; // already handled
    client = null;
    c.end().catch(() => undefined);
    if (listening) {
      listening = false;
      o.onDown();
    }
    if (err && !closed) o.onError(err);
    if (!closed) {
      timer = setTimeout(connect, delay);
      timer.unref();
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  };

  const connect = () => {
    timer = null;
    if (closed) return;
    // keepAlive: a connection cut without a FIN (a dead host, a dropped NAT entry) is found out.
    const c = new pg.Client({ connectionString: url, keepAlive: true, connectionTimeoutMillis: 5000, application_name: 'intake-listen' });
    client = c;
    c.on('notification', (m) => {
      if (m.channel === COMPLETED_CHANNEL && m.payload) o.onCompleted(m.payload.split(','));
    });
    c.on('error', (err) => lost(c, err));
    c.on('end', () => lost(c));
    c.connect()
      .then(() => c.query(`LISTEN ${COMPLETED_CHANNEL}`))
      .then(() => {
        if (client !== c || closed) return;
        listening = true;
        delay = RECONNECT_MIN_MS;
        o.onUp();
      })
      .catch((err: Error) => lost(c, err));
  };

  connect();
  return {
    get listening() {
      return listening;
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      listening = false;
      await c?.end().catch(() => undefined);
    },
  };
}
