// cluster/books.json: the latest books of the cluster (books.ts), taken by one save-mode node
// (books-keeper.ts) and read by every node for its metrics (books-gauges.ts) and GET /v1/cluster.
// Derived data: a file that cannot be read is no books yet (the next run rewrites it whole).
import { promises as fsp } from 'node:fs';
import { booksPath } from '../cluster/paths.js';
import type { Books } from './books.js';

export type BooksFile = Books & {
  /** When the books were taken (the taking node's wall clock, ISO 8601). */
  takenAt: string;
  takenBy: string;
  durationMs: number;
  balanced: boolean;
  /** How many differences there were (the file keeps the first 100). */
  differenceCount: number;
};

export async function readBooksFile(root: string): Promise<BooksFile | null> {
  let text: string;
  try {
    text = await fsp.readFile(booksPath(root), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const f = JSON.parse(text) as BooksFile;
    return typeof f.takenAt === 'string' && Array.isArray(f.nodes) ? f : null;
  } catch {
    return null;
  }
}
