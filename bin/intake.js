#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli into dist/ by `npm ci` (prepare) or `npm run build`.
import { main } from '../dist/src/cli/main.js';

main(process.argv).catch((err) => {
  process.stderr.write(`intake: ${err?.message ?? err}\n`);
  process.exitCode = 1;
});
