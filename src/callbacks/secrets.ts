// Per-tenant signing secrets. From INTAKE_WEBHOOK_SECRETS_FILE ({"tenant": ["whsec_new", "whsec_old"]})
// or INTAKE_WEBHOOK_SECRET (the default tenant); otherwise one is made on first use and kept
// under the spool root, so every node of the cluster signs with the same secret. Several
// secrets per tenant = rotation: every callback carries a signature of each.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { clusterDir } from '../cluster/paths.js';
import { readOrCreateShared } from '../cluster/shared-file.js';

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
    // The first node makes it; every other node reads that one.
    map = await readOrCreateShared<SecretMap>(join(clusterDir(root), 'webhook-secrets.json'), clusterDir(root), () => ({
      default: [`whsec_${randomBytes(24).toString('base64')}`],
    }));
  }
  return {
    secretsFor(tenant) {
      const s = map[tenant] ?? map.default;
      if (!s || s.length === 0) throw new Error(`no webhook secret for tenant ${tenant}`);
      return s;
    },
  };
}
