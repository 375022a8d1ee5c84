// Small files every node of a cluster shares and the first one creates: the webhook secrets,
// the id secret. Created atomically and durably: the content goes to a temp file that is
// fsynced, then hard-linked to its name (link refuses to replace an existing file, so two nodes
// starting at once agree on one content), then the directory is fsynced. A crash leaves either
// no file or the whole file, never an empty one that stops every node from starting.
import { promises as fsp } from 'node:fs';
import { fsyncDir, writeFileSynced } from '../spool/fsutil.js';

export async function readOrCreateShared<T>(path: string, dir: string, make: () => T): Promise<T> {
  try {
    return JSON.parse(await fsp.readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fsp.mkdir(dir, { recursive: true });
  const value = make();
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFileSynced(tmp, JSON.stringify(value, null, 2) + '\n', 0o600);
  try {
    await fsp.link(tmp, path);
    await fsyncDir(dir);
    return value;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return JSON.parse(await fsp.readFile(path, 'utf8')) as T; // another node made it first: theirs wins
  } finally {
    await fsp.unlink(tmp).catch(() => undefined);
  }
}
