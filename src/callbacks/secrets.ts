// Per-tenant signing secrets. From --webhook-secrets-file ({"tenant": ["whsec_new", "whsec_old"]})
// or --webhook-secret (the default tenant), both checked at start (src/config.ts); otherwise one is made on first use and kept
// under the spool root, so every node of the cluster signs with the same secret. Several
// secrets per tenant = rotation: every callback carries a signature of each.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readWebhookSecretsFile } from '../config.js';
import { clusterDir } from '../cluster/paths.js';
import { readOrCreateShared } from '../cluster/shared-file.js';

export type SecretMap = Record<string, string[]>;

export interface SecretSource {
  secretsFor(tenant: string): string[];
}

export async function loadSecrets(root: string, given: { webhookSecret: string; webhookSecretsFile: string }): Promise<SecretSource> {
  let map: SecretMap;
  if (given.webhookSecretsFile) {
    map = readWebhookSecretsFile(given.webhookSecretsFile); // small, once at start
  } else if (given.webhookSecret) {
    map = { default: given.webhookSecret.split(/\s+/).filter(Boolean) };
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
