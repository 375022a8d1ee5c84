#!/usr/bin/env bash
# Rolling upgrade of an intake cluster, following the runbook in docs/design.md:
#   1. every node to receive mode (nothing touches the database any more)
#   2. for each node: drain it from the load balancer, stop it, install/start the new version
#      (it comes up in receive mode: the desired mode says so), wait for it, undrain it
#   3. migrate the schema
#   4. every node back to the final mode (both by default); the backlog drains
# It stops at the first failed step with a message naming the step; the cluster is then in a
# safe state (requests are still accepted and spooled), and the script can be run again.
#
# Usage:
#   ops/rolling-upgrade.sh --nodes "n1 n2 n3" --stop 'CMD {node}' --start 'CMD {node}' [options]
# Options:
#   --nodes LIST       node ids, in upgrade order (required)
#   --stop CMD         stops one node and returns once it has exited ({node} is replaced)
#   --start CMD        installs/starts the new version of one node ({node} is replaced)
#   --intake CMD       the intake CLI to use (default: intake); use the new version's
#   --spool DIR        spool root (default: $INTAKE_SPOOL or ./spool)
#   --migrate CMD      schema migration (default: "<intake> migrate"; needs INTAKE_DB or --db in CMD)
#   --final-mode MODE  mode after the upgrade (default: both)
#   --idle-ms N        quiet time after drain before stopping (default: 2000; >= LB check interval x fall)
#   --timeout S        per waiting step (default: 120)
set -euo pipefail

nodes="" stop_cmd="" start_cmd="" intake="intake" spool="${INTAKE_SPOOL:-./spool}" migrate_cmd=""
final_mode="both" idle_ms=2000 timeout=120

while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --stop) stop_cmd="$2"; shift 2 ;;
    --start) start_cmd="$2"; shift 2 ;;
    --intake) intake="$2"; shift 2 ;;
    --spool) spool="$2"; shift 2 ;;
    --migrate) migrate_cmd="$2"; shift 2 ;;
    --final-mode) final_mode="$2"; shift 2 ;;
    --idle-ms) idle_ms="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "rolling-upgrade: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$nodes" ] && [ -n "$stop_cmd" ] && [ -n "$start_cmd" ] || { echo "rolling-upgrade: --nodes, --stop and --start are required (see --help)" >&2; exit 2; }
[ -n "$migrate_cmd" ] || migrate_cmd="$intake migrate"

step() { echo "rolling-upgrade: [$(date -u +%H:%M:%S)] $*"; }
run() {
  local what="$1"; shift
  if ! "$@"; then
    echo "rolling-upgrade: FAILED at: $what" >&2
    echo "rolling-upgrade: the cluster is still accepting requests (receive mode spools them); fix the cause and run again" >&2
    exit 1
  fi
}
sub() { printf '%s' "${1//\{node\}/$2}"; }

t0=$(date +%s)
step "1/4 all nodes to receive mode"
run "mode receive --all" $intake mode receive --all --wait --timeout "$timeout" --spool "$spool"

for n in $nodes; do
  step "2/4 node $n: drain"
  run "drain $n" $intake node drain "$n" --wait --idle-ms "$idle_ms" --timeout "$timeout" --spool "$spool"
  step "2/4 node $n: stop"
  run "stop $n" bash -c "$(sub "$stop_cmd" "$n")"
  step "2/4 node $n: start new version"
  run "start $n" bash -c "$(sub "$start_cmd" "$n")"
  run "wait for $n" $intake node wait "$n" --timeout "$timeout" --spool "$spool"
  step "2/4 node $n: undrain"
  run "undrain $n" $intake node undrain "$n" --spool "$spool"
  # Give the load balancer time to see /readyz pass again before the next node is drained,
  # so two nodes are never out at once.
  sleep "$(awk "BEGIN { print $idle_ms / 1000 }")"
done

step "3/4 migrate"
run "migrate" bash -c "$migrate_cmd"

step "4/4 all nodes to $final_mode mode"
run "mode $final_mode --all" $intake mode "$final_mode" --all --wait --timeout "$timeout" --spool "$spool"
step "done in $(( $(date +%s) - t0 )) s"
