#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli into dist/ by `npm ci` (prepare) or `npm run build`.
import { main } from '../dist/src/cli/main.js';

main(process.argv).catch((err) => {
  // An IntakeError's code (docs/errors.md) goes with its message, for the operator to look up.
  const code = err?.name === 'IntakeError' ? ` (${err.code})` : '';
  process.stderr.write(`intake: ${err?.message ?? err}${code}\n`);
  process.exitCode = 1;
});
