// Per-tenant signing secrets. From INTAKE_WEBHOOK_SECRETS_FILE ({"tenant": ["whsec_new", "whsec_old"]})
// or INTAKE_WEBHOOK_SECRET (the default tenant); otherwise one is made on first use and kept
// under the spool root, so every node of the cluster signs with the same secret. Several
// secrets per tenant = rotation: every callback carries a signature of each.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir, writeFully } from '../spool/fsutil.js';
import { clusterDir } from '../cluster/paths.js';

export type SecretMap = Record<string, string[]>;

export interface SecretSource {
  secretsFor(tenant: string): string[];
}

export async function loadSecrets(root: string, env: NodeJS.ProcessEnv = process.env): Promise<SecretSource> {
  let map: SecretMap;
  if (env.INTAKE_WEBHOOK_SECRETS_FILE) {
    map = JSON.parse(await fsp.readFile(env.INTAKE_WEBHOOK_SECRETS_FILE, 'utf8')) as SecretMap;
  } else if (env.INTAKE_WEBHOOK_SECRET) {
    map = { default: env.INTAKE_WEBHOOK_SECRET.split(/\s+/).filter(Boolean) };
  } else {
    const path = join(clusterDir(root), 'webhook-secrets.json');
    try {
      map = JSON.parse(await fsp.readFile(path, 'utf8')) as SecretMap;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await fsp.mkdir(clusterDir(root), { recursive: true });
      map = await createShared(path, clusterDir(root));
    }
  }
  return {
    secretsFor(tenant) {
      const s = map[tenant] ?? map.default;
      if (!s || s.length === 0) throw new Error(`no webhook secret for tenant ${tenant}`);
      return s;
    },
  };
}

/** The first node creates the secret file (O_EXCL); every other node reads that one. */
async function createShared(path: string, dir: string): Promise<SecretMap> {
  const map: SecretMap = { default: [`whsec_${randomBytes(24).toString('base64')}`] };
  try {
    const fh = await fsp.open(path, 'wx', 0o600);
    try {
      await writeFully(fh, Buffer.from(JSON.stringify(map)), 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(dir);
    return map;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  for (let i = 0; ; i++) {
    try {
      return JSON.parse(await fsp.readFile(path, 'utf8')) as SecretMap;
    } catch (err) {
      if (i >= 20) throw err; // another node is writing it this instant
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
