// Facts about the installed package: where it lives (migrations are read from it at run time)
// and its version (reported in heartbeats and `intake status`).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

// Compiled, this file is dist/src/package.js; run from source it is src/package.ts.
export const packageRoot = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../' : '../', import.meta.url));

export const packageVersion: string = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
