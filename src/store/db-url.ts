// Which engine a database URL names: sqlite:<path> (default) or postgres://... Checked when the
// configuration is loaded (src/config.ts) and again when a store is opened (open.ts).
import { Errors } from '../errors.js';

export function parseDbUrl(url: string): { engine: 'sqlite'; path: string } | { engine: 'postgres'; url: string } {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw Errors.badConfig(`database URL ${url} has no path (try sqlite:./data/intake.db)`);
    return { engine: 'sqlite', path };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    if (!URL.canParse(url)) throw Errors.badConfig('the PostgreSQL URL is not a valid URL (postgres://user:password@host:port/database)');
    return { engine: 'postgres', url };
  }
  // Only the scheme is repeated: the rest of a mistyped URL may hold a password.
  throw Errors.badConfig(`unsupported database URL (scheme ${JSON.stringify(url.split(':')[0])}): use sqlite:<path> or postgres://...`);
}
