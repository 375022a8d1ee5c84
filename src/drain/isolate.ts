// Poison-record isolation. A record can pass every check of ours and still be refused by the
// database (a constraint, a value the engine cannot store). Inserting the whole set again would
// fail again on every retry and hold up the segment for good, so on a data error the set is
// split in halves, recursively, until the refused single records are found. Every insert is
// insert-if-absent on the id, so a half that was partly stored before failing is harmless to
// insert again. A non-data error (the database is down) ends the search: the caller retries.
import { isDataError } from '../store/errors.js';

/** A record with where it sits in its segment, so a refused one can be quarantined by its bytes. */
export interface Located<T> {
  offset: number;
  length: number;
  value: T;
}

export interface Refused<T> {
  item: Located<T>;
  err: unknown;
}

/**
 * Insert `items` with `insert` (which returns how many were new); on a data error, bisect.
 * Returns the count of new rows and every item the database refused on its own.
 */
export async function insertIsolating<T>(
  items: Located<T>[],
  insert: (values: T[]) => Promise<number>,
): Promise<{ inserted: number; refused: Refused<T>[] }> {
  const refused: Refused<T>[] = [];
  let inserted = 0;
  const attempt = async (part: Located<T>[]): Promise<void> => {
    if (part.length === 0) return;
    try {
      inserted += await insert(part.map((i) => i.value));
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (part.length === 1) {
        refused.push({ item: part[0]!, err });
        return;
      }
      const mid = part.length >>> 1;
      await attempt(part.slice(0, mid));
      await attempt(part.slice(mid));
    }
  };
  await attempt(items);
  return { inserted, refused };
}
