#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli into dist/ by `npm ci` (prepare) or `npm run build`.
import { main } from '../dist/src/cli/main.js';

main(process.argv).catch((err) => {
  // intake's own errors carry a stable code (docs/errors.md): say it, so scripts and people can look it up.
  const code = typeof err?.code === 'string' && err.code.startsWith('INTAKE_') ? `${err.code}: ` : '';
  process.stderr.write(`intake: ${code}${err?.message ?? err}\n`);
  process.exitCode = 1;
});
