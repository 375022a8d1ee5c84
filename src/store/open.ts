// Pick the engine from a database URL: sqlite:<path> (default) or postgres://...
import { openPostgresStore } from './postgres/engine.js';
import { openSqliteStore } from './sqlite/client.js';
import type { Store } from './store.js';
import { parseDbUrl } from './db-url.js';

export async function openStore(url: string, opts: { onError?: (err: Error) => void } = {}): Promise<Store> {
  const parsed = parseDbUrl(url);
  if (parsed.engine === 'sqlite') return openSqliteStore(parsed.path);
  return openPostgresStore(parsed.url, opts);
}
