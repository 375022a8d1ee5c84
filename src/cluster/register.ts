// Registration numbers: every process start takes the next number (O_EXCL create, retried on a
// race). The leader is the live node with the lowest number, i.e. the longest-running one.
import { promises as fsp } from 'node:fs';
import { fsyncDir, mkdirDurable } from '../spool/fsutil.js';
import { membersDir } from './paths.js';

const entry = (seq: number, node: string) => `${String(seq).padStart(10, '0')}-${node}`;

export async function register(root: string, node: string): Promise<number> {
  const dir = membersDir(root);
  await mkdirDurable(dir);
  for (;;) {
    const names = await fsp.readdir(dir);
    const max = names.reduce((m, n) => Math.max(m, Number.parseInt(n.slice(0, 10), 10) || 0), 0);
    const seq = max + 1;
    try {
      await (await fsp.open(`${dir}/${entry(seq, node)}`, 'wx')).close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // another node took it
      throw err;
    }
    await fsyncDir(dir); // a registration a power cut took back could hand out its number twice
    // This node's earlier registrations belong to processes that are gone.
    for (const n of names) if (n.slice(11) === node) await fsp.rm(`${dir}/${n}`, { force: true });
    return seq;
  }
}
