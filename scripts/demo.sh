#!/usr/bin/env bash
# The main demo: a DNS provisioner shipped by canary onto a local fleet.
#   1. build rollgate and the provisioner (cargo's own progress),
#   2. start N provisioner processes (v1) on free loopback ports and the
#      seeded load generator,
#   3. ship v2, the bad build (errors on POST /records, slow reads): the
#      canary gate judges the metrics it scrapes from every instance and
#      rolls v2 back at the first step, naming the metrics,
#   4. ship v3, a good build: promoted step by step to 100 %,
#   5. print the audit history, write each rollout's HTML report (into
#      target/ci-artifacts/dns-VERSION-report.html), print the load and a
#      business-metrics sample.
# Every process it starts is stopped on exit, also on Ctrl-C or SIGTERM.
# The server-free example on local directories is scripts/demo-files.sh.
#   DEMO_FLEET (4), DEMO_RATE (requests/s per instance, 200), DEMO_BAKE (4s)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
n="${DEMO_FLEET:-4}"
rate="${DEMO_RATE:-200}"
bake="${DEMO_BAKE:-4s}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "0. build (rollgate and the dns-provisioner example)"
cargo build -p rollgate-cli -p dns-provisioner
bindir="${CARGO_TARGET_DIR:-$root/target}/debug"
rollgate="$bindir/rollgate"
prov="$bindir/dns-provisioner"
loadgen="$bindir/dns-loadgen"
started=$SECONDS

work="$(mktemp -d "${TMPDIR:-/tmp}/rollgate-dns-demo.XXXXXX")"
run="$work/run"
lg_pid=""
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$lg_pid" ]; then kill -TERM "$lg_pid" 2>/dev/null || true; wait "$lg_pid" 2>/dev/null || true; fi
  "$prov" stop --dir "$run" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "demo: interrupted; stopping the fleet" >&2; cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
cp examples/dns-provisioner/demo/analysis.toml "$work/"
cd "$work"
export ROLLGATE_STATE="$work/rollgate.db"
expect() { # expect CODE command...: run, and check its exit code
  local want=$1; shift
  set +e; "$@"; local got=$?; set -e
  if [ "$got" -eq 130 ] || [ "$got" -eq 143 ]; then echo "demo: interrupted; the fleet is stopped" >&2; exit "$got"; fi
  if [ "$got" -ne "$want" ]; then echo "demo: expected exit $want, got $got from: $*" >&2; exit 1; fi
}
versions() { # what every instance's /health says it serves
  local out="" i=0 a
  for a in "${addrs[@]}"; do
    i=$((i + 1))
    out+="dns-$i=$("$prov" get "$a" /health 2>/dev/null | sed 's/^ok //' || echo down) "
  done
  echo "$out"
}

step "1. start $n provisioners (v1) on free loopback ports, and the load generator ($rate req/s each, seed 42)"
mapfile -t addrs < <("$prov" free-addrs "$n")
for i in $(seq 1 "$n"); do
  "$prov" deploy --dir "$run" --name "dns-$i" --addr "${addrs[$((i - 1))]}" --version v1
done
( IFS=,; exec "$loadgen" --target "${addrs[*]}" --seed 42 --rate "$rate" --concurrency 8 > "$work/loadgen.txt" 2>&1 ) &
lg_pid=$!
echo "fleet: $(versions)"
echo "each instance: SQLite store in $run/dns-N.db, JSON logs in $run/dns-N.log, metrics at http://ADDR/metrics"
sleep 1

plan() { bash "$root/examples/dns-provisioner/demo/plan.sh" "$1" "$2" "$prov" "$run" "$bake" "${addrs[@]}" > "$work/$1.toml"; }

step "2. ship v2 (bad build: 20 % of creates fail, 4 % of reads +250 ms): canary 25 % -> 50 % -> 100 %, gated on scraped metrics"
plan v2 v1
expect 1 "$rollgate" rollout run v2.toml --actor demo --idempotency-key dns-v2
echo "fleet: $(versions)"
case "$(versions)" in *v2*) echo "demo: an instance still runs v2" >&2; exit 1;; esac

step "3. ship v3 (good build): promoted to 100 %"
plan v3 v1
expect 0 "$rollgate" rollout run v3.toml --actor demo --idempotency-key dns-v3
echo "fleet: $(versions)"
for v in $(versions); do [ "${v#*=}" = v3 ] || { echo "demo: $v is not on v3" >&2; exit 1; }; done

step "4. audit history of dns, and an HTML report of each rollout"
"$rollgate" rollout history --service dns
reports="${CARGO_TARGET_DIR:-$root/target}/ci-artifacts"
mkdir -p "$reports"
"$rollgate" rollout list --service dns | awk 'NR > 1 { print $1, $3 }' | while read -r id version; do
  "$rollgate" report "$id" --out "$reports/dns-$version-report.html"
done

step "5. the load generator's view, and business metrics on dns-1 (same /metrics as the gate scraped)"
kill -TERM "$lg_pid"; wait "$lg_pid" || true; lg_pid=""
cat "$work/loadgen.txt"
"$prov" get "${addrs[0]}" /metrics | grep -E '^dns_(records_created_total|record_failures_total|record_ttl_seconds_count)' \
  | sed 's/,\?service="dns-provisioner"//; s/,\?version="[^"]*"//; s/{,/{/; s/{}//'
"$prov" stop --dir "$run" # fails when a provisioner process is still running
echo
echo "demo ok in $((SECONDS - started)) s after the build: v2 rolled back at the first step, v3 on all $n instances; every process stopped"
