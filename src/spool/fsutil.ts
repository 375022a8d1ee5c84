// File-system primitives of the durability promise: whole writes, data syncs, directory syncs.
import { promises as fsp, constants as C } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * Write all of `data` at `position`. A short write is continued, never ignored; an error is
 * thrown as is (ENOSPC, EIO...) so the caller can fail the whole batch.
 */
export async function writeFully(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error(`write returned ${bytesWritten}`), { code: 'EIO' });
    done += bytesWritten;
  }
}

/** Read `length` bytes of `path` at `offset`. A file that ends before them is an error, not a short buffer. */
export async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await fsp.open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead <= 0) throw Object.assign(new Error(`${path} ends before byte ${offset + length}`), { code: 'EIO' });
      done += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** fsync a directory so a create, rename or unlink inside it survives a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, C.O_RDONLY | C.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * mkdir -p that survives a power loss: the parent of every folder it made is fsynced (top down),
 * so a file later made durable inside the new folder cannot be left without a path to it.
 * Costs one mkdir when the folder exists.
 */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await fsp.mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const top = resolve(first);
  const made: string[] = [];
  for (let p = resolve(dir); ; p = dirOf(p)) {
    made.push(p);
    if (p === top || p === '/') break;
  }
  for (const p of made.reverse()) await fsyncDir(dirOf(p));
}

/** Create or replace `path` with `data` and fsync the file (not its directory). */
export async function writeFileSynced(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const fh = await fsp.open(path, 'w', mode);
  try {
    await writeFully(fh, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write a small file durably and atomically: temp file, fsync, rename, directory fsync. */
export async function writeFileDurable(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFileSynced(tmp, data, mode);
  await fsp.rename(tmp, path);
  await fsyncDir(dirOf(path));
}

export function dirOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? (i === 0 ? '/' : '.') : path.slice(0, i);
}

/** Errors that mean "no space": the spool is full, not broken. */
export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
