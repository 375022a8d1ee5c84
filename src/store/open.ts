// Pick the engine from a database URL: sqlite:<path> (default) or postgres://...
import { Errors } from '../errors.js';
import { openPostgresStore } from './postgres/engine.js';
import { openSqliteStore } from './sqlite/client.js';
import type { Store } from './store.js';

export function parseDbUrl(url: string): { engine: 'sqlite'; path: string } | { engine: 'postgres'; url: string } {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw Errors.badConfig(`database URL ${url} has no path (try sqlite:./data/intake.db)`);
    return { engine: 'sqlite', path };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { engine: 'postgres', url };
  throw Errors.badConfig(`unsupported database URL ${JSON.stringify(url)}: use sqlite:<path> or postgres://...`);
}

export async function openStore(url: string, opts: { onError?: (err: Error) => void } = {}): Promise<Store> {
  const parsed = parseDbUrl(url);
  if (parsed.engine === 'sqlite') return openSqliteStore(parsed.path);
  return openPostgresStore(parsed.url, opts);
}
