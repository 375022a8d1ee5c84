// API keys, kept in <root>/cluster/keys.json so every node reads them without the database
// (receive mode keeps authenticating during migrations). A key is shown once, at creation;
// the file keeps only its SHA-256 (right for random, high-entropy keys: no salt or slow hash
// is needed, and a leaked file does not reveal a key). Revoked keys stay listed (revoked_at),
// so "keys exist" never flips back to the open mode by revoking the last one.
//
// A key reads `ik_<id>_<secret>`: the id finds its entry, the secret is compared by hash in
// constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { Errors } from '../errors.js';
import { writeFileDurable } from '../spool/fsutil.js';
import { clusterDir, keysPath } from './paths.js';
import { lockShared } from './shared-file.js';

export const SCOPES = ['submit', 'process', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  id: string;
  tenant: string;
  scopes: Scope[];
  /** Lanes a process key may claim from; null for every lane. */
  lanes: string[] | null;
  /** hex SHA-256 of the secret part. */
  hash: string;
  created_at: string;
  revoked_at: string | null;
}

export interface KeysFile {
  keys: ApiKey[];
}

export const TENANT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KEY_PATTERN = /^ik_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export async function readKeys(root: string): Promise<KeysFile> {
  try {
    const f = JSON.parse(await fsp.readFile(keysPath(root), 'utf8')) as Partial<KeysFile>;
    return { keys: Array.isArray(f.keys) ? f.keys : [] };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { keys: [] };
    throw err;
  }
}

/** Read-modify-write under a lock, so two operators never lose each other's change. */
async function updateKeys<T>(root: string, change: (f: KeysFile) => T): Promise<T> {
  await fsp.mkdir(clusterDir(root), { recursive: true });
  const release = await lockShared(keysPath(root));
  try {
    const f = await readKeys(root);
    const out = change(f);
    await writeFileDurable(keysPath(root), JSON.stringify(f, null, 2) + '\n', 0o600);
    return out;
  } finally {
    await release();
  }
}

export async function createKey(root: string, o: { tenant: string; scopes: Scope[]; lanes: string[] | null }): Promise<{ key: string; entry: ApiKey }> {
  if (!TENANT_PATTERN.test(o.tenant)) throw Errors.badConfig(`tenant ${JSON.stringify(o.tenant)} must match ${TENANT_PATTERN}`);
  if (o.scopes.length === 0) throw Errors.badConfig('a key needs at least one scope (submit, process, admin)');
  for (const s of o.scopes) if (!(SCOPES as readonly string[]).includes(s)) throw Errors.badConfig(`unknown scope ${JSON.stringify(s)}: use ${SCOPES.join(', ')}`);
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const entry: ApiKey = {
    id,
    tenant: o.tenant,
    scopes: [...new Set(o.scopes)],
    lanes: o.lanes && o.lanes.length > 0 ? o.lanes : null,
    hash: sha256(secret).toString('hex'),
    created_at: new Date().toISOString(),
    revoked_at: null,
  };
  await updateKeys(root, (f) => f.keys.push(entry));
  return { key: `ik_${id}_${secret}`, entry };
}

/** Returns false when no such key exists. Revoking twice keeps the first time. */
export async function revokeKey(root: string, id: string): Promise<boolean> {
  return updateKeys(root, (f) => {
    const k = f.keys.find((x) => x.id === id);
    if (!k) return false;
    k.revoked_at ??= new Date().toISOString();
    return true;
  });
}

/** The key's entry if `presented` is a live key of this file, else why not. */
export function verifyKey(f: KeysFile, presented: string): { key: ApiKey } | { problem: 'malformed' | 'unknown' | 'revoked' } {
  const m = KEY_PATTERN.exec(presented);
  if (!m) return { problem: 'malformed' };
  const k = f.keys.find((x) => x.id === m[1]);
  // Hash even when the id is unknown, so the answer takes the same time either way.
  const got = sha256(m[2]!);
  const want = k ? Buffer.from(k.hash, 'hex') : got;
  if (!k || want.length !== got.length || !timingSafeEqual(want, got)) return { problem: 'unknown' };
  if (k.revoked_at) return { problem: 'revoked' };
  return { key: k };
}
