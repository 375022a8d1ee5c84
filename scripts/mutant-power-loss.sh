#!/usr/bin/env bash
# Shows that the power-loss test (test/faults/power-loss.test.ts) can fail: it runs the test
# against a mutated copy of the build in which the spool writer skips a sync, and expects the
# test to FAIL (lost > 0). The product has no switch for this; the mutant is a sed over a copy
# of dist/. Run after `npx tsc -p tsconfig.json`, as root (losetup, mount). Not part of CI.
#
# Usage: scripts/mutant-power-loss.sh [datasync|dirsync]
#   datasync (default): the writer's fdatasync of a batch is gone
#   dirsync:            the writer's directory fsync after creating a segment is gone
# Exit code 0: the test caught the mutant (its figures show lost > 0). 1: the mutant survived
# (the test is too weak for it), or the test failed for another reason.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-datasync}"
writer=dist/src/spool/writer.js
[ -f "$writer" ] || { echo "mutant: $writer missing; run npx tsc -p tsconfig.json first" >&2; exit 2; }

mutant="$(mktemp -d "${TMPDIR:-/tmp}/intake-mutant-XXXXXX")"
trap 'rm -rf "$mutant"' EXIT
mkdir -p "$mutant/src/store"
cp -r bin dist web package.json "$mutant/"
cp -r src/store/migrations "$mutant/src/store/"  # read at run time from the package root
ln -s "$PWD/node_modules" "$mutant/node_modules"

case "$kind" in
  datasync)
    perl -0pi -e 's/await seg\.fh\.datasync\(\);/\/* MUTANT: no fdatasync *\/;/ or die "pattern not found\n"' "$mutant/$writer" ;;
  dirsync)
    perl -0pi -e 's/await fsyncDir\(nodeDir\(this\.o\.root, this\.o\.node\)\);(\s*seg\.dirSynced = true;)/\/* MUTANT: no directory fsync *\/;$1/ or die "pattern not found\n"' "$mutant/$writer" ;;
  *) echo "usage: $0 [datasync|dirsync]" >&2; exit 2 ;;
esac
grep -q MUTANT "$mutant/$writer"

echo "mutant ($kind): running the power-loss test against $mutant"
out="$mutant/test-output.txt"
INTAKE_POWER_LOSS_BIN="$mutant/bin/intake.js" node scripts/test.mjs faults/power-loss 2>&1 | tee "$out" || true
figures="$(grep -m1 -E '^(# )?power-loss test' "$out" || true)"
lost="$(printf '%s' "$figures" | sed -n 's/.* lost=\([0-9]*\) .*/\1/p')"
if [ -z "$lost" ]; then
  echo "mutant ($kind): the test printed no figures; it failed for another reason (see above)"
  exit 1
elif [ "$lost" -gt 0 ]; then
  echo "mutant ($kind) caught: $figures"
else
  echo "mutant ($kind) SURVIVED: $figures"
  exit 1
fi
