#!/usr/bin/env bash
# The server-free example (the main demo is scripts/demo.sh), on embedded
# defaults (SQLite state file, command deployer on local directories; no
# process to run):
#   1. install web v1 on ten targets,
#   2. canary web v2 (10 % -> 50 % -> 100 %), gated by examples/rollout/check.sh,
#   3. canary web v3, whose health breaks the bounds: rolled back at 10 %,
#   4. print the audit history, then `rollgate rollback` web to v1 in one command.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cargo build --quiet -p rollgate-cli
bin="${CARGO_TARGET_DIR:-$root/target}/debug/rollgate"

work="$(mktemp -d "${TMPDIR:-/tmp}/rollgate-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp -r examples/rollout/. "$work/"
cd "$work"
export ROLLGATE_STATE="$work/rollgate.db"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
expect() { # expect CODE command...: run, and check its exit code
  local want=$1; shift
  set +e; "$@"; local got=$?; set -e
  if [ "$got" -ne "$want" ]; then echo "demo: expected exit $want, got $got from: $*" >&2; exit 1; fi
}

step "1. install web v1 on 10 fresh targets (all at once; one-way: there is nothing to roll back to)"
expect 0 "$bin" rollout run v1.toml --actor demo --idempotency-key web-v1 --no-rollback-ok

step "2. canary web v2: 10% -> 50% -> 100%, each step baked 1s and gated by ./check.sh"
expect 0 "$bin" rollout run v2.toml --actor demo --idempotency-key web-v2

step "   the same request again (same idempotency key): nothing new starts"
expect 0 "$bin" rollout run v2.toml --actor demo --idempotency-key web-v2

step "3. canary web v3: its health breaks the bounds, so the gate rolls it back at 10%"
expect 1 "$bin" rollout run v3.toml --actor demo --idempotency-key web-v3
echo "targets now run: $(cat srv/*/current | sort | uniq -c | tr -s ' ' | paste -sd, -)"

step "4. audit history of web"
"$bin" rollout history --service web | tail -n 12

step "5. one-command rollback of web: back to the artifact before the last successful rollout (v1)"
expect 0 "$bin" rollback --service web --actor demo
echo "targets now run: $(cat srv/*/current | sort | uniq -c | tr -s ' ' | paste -sd, -)"
for t in srv/*/current; do [ "$(cat "$t")" = v1 ] || { echo "demo: $t is not on v1" >&2; exit 1; }; done
echo
echo "demo ok: state in a throwaway $ROLLGATE_STATE; see README.md for the plan format"
