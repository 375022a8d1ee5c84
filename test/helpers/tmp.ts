// Throwaway directories, removed after the test unless INTAKE_KEEP_TMP is set (for a post-mortem).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(prefix = 'intake-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    cleanup() {
      if (!process.env.INTAKE_KEEP_TMP) rmSync(path, { recursive: true, force: true });
    },
  };
}
