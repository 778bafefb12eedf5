#!/usr/bin/env bash
# Issue 17's benchmarks side by side, in one run, release profile:
#
#   1. PostgreSQL durable transitions/s: PostgresStore's group commit against
#      single-row commits on the same server (rollgate-deploy's `postgres`
#      bench: 1,000 appends in flight, fsync and synchronous_commit on);
#   2. `POST /v1/rollouts` latency under CLIENTS concurrent clients
#      (rollgate-cli's `api_load` example against a release `rollgate serve`),
#      on a SQLite file and on PostgreSQL;
#   3. takeover time: two `rollgate serve` processes (lease TTL 2 s, scan every
#      100 ms) on one PostgreSQL database; the one driving a rollout is frozen
#      (SIGSTOP) in the middle of a deploy; time from the SIGSTOP until the
#      other's `controller_started` event is visible through its API (polled
#      every 10 ms), RUNS times.
#
#   bash scripts/serve-bench.sh [RUNS]      (default 5 takeover runs)
#
# Builds only what it runs (`cargo build --release -p rollgate-cli --bin
# rollgate --example api_load` and the bench), then runs every measure under
# `flock /tmp/bench.lock` against one PostgreSQL 15 from scripts/postgres.sh
# (installed if missing), and prints one table. Environment: CLIENTS (200),
# EACH (3 submissions per client). Scratch data goes under target/tmp and is
# deleted. Exit 0 when every measure ran, 1 when one failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--measure" ]; then
  RUNS="${1:-5}"
  case "$RUNS" in '' | *[!0-9]*) echo "usage: $0 [RUNS]" >&2; exit 2 ;; esac
  cargo build --release -p rollgate-cli --bin rollgate --example api_load
  bench_log="$(mktemp)"
  cargo bench --no-run -p rollgate-deploy --features postgres --bench postgres 2>&1 | tee "$bench_log" >&2
  bench="$(sed -n 's/.*Executable benches\/postgres.rs (\(.*\))/\1/p' "$bench_log" | tail -1)"
  rm -f "$bench_log"
  if [ ! -x "$bench" ]; then
    echo "serve-bench: cannot find the postgres bench executable" >&2
    exit 1
  fi
  export SERVE_BENCH_RUNS="$RUNS" SERVE_BENCH_PG="$bench"
  exec flock /tmp/bench.lock bash scripts/postgres.sh run bash "$0" --measure
fi

: "${ROLLGATE_TEST_POSTGRES_URL:?run through scripts/postgres.sh run}"
RUNS="${SERVE_BENCH_RUNS:-5}"
CLIENTS="${CLIENTS:-200}"
EACH="${EACH:-3}"
BIN="$PWD/target/release/rollgate"
LOAD="$PWD/target/release/examples/api_load"
mkdir -p target/tmp
SCRATCH="$(mktemp -d -p "$PWD/target/tmp" serve-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill -CONT "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
failed=0
base="${ROLLGATE_TEST_POSTGRES_URL%/*}"
createdb_bin=/usr/lib/postgresql/15/bin/createdb
if [ ! -x "$createdb_bin" ]; then
  createdb_bin="$(dirname "$(readlink -f "$(command -v initdb)")")/createdb"
fi

database() { # NAME: a fresh database on the server; prints its URL
  "$createdb_bin" --maintenance-db="$ROLLGATE_TEST_POSTGRES_URL" "$1" >&2
  echo "$base/$1"
}

start_serve() { # DIR STATE NAME [ARGS...]: starts serve, prints its address
  local dir="$1" state="$2" name="$3"
  shift 3
  "$BIN" serve --state "$state" --listen 127.0.0.1:0 --token-file "$dir/token" \
    --workdir "$dir" "$@" 2>"$dir/$name.err" >/dev/null &
  pids+=("$!")
  echo "$!" >"$dir/$name.pid"
  for _ in $(seq 1 600); do
    if grep -q "listening on http://" "$dir/$name.err"; then
      sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$dir/$name.err" | head -1
      return
    fi
    sleep 0.05
  done
  echo "serve-bench: serve did not start" >&2
  return 1
}

stop_serve() { # DIR NAME
  local pid
  pid="$(cat "$1/$2.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "== 1. PostgreSQL group commit vs single-row commits" >&2
pg_out="$SCRATCH/pg.txt"
if ! "$SERVE_BENCH_PG" --bench >"$pg_out" 2>&1; then
  cat "$pg_out" >&2
  failed=1
fi
cat "$pg_out" >&2

api() { # NAME STATE [SERVE ARGS...]: api_load against a fresh server on STATE
  local dir="$SCRATCH/api-$1" addr
  mkdir -p "$dir"
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/token")
  local state="$2"
  shift 2
  [ "$state" = sqlite ] && state="$dir/state.db"
  addr="$(start_serve "$dir" "$state" serve --scan-interval 1s "$@")" || return 1
  if ! "$LOAD" "http://$addr" "$dir/token" "$CLIENTS" "$EACH" >"$dir/load.txt" 2>&1; then
    failed=1
  fi
  cat "$dir/load.txt" >&2
  stop_serve "$dir" serve
  head -1 "$dir/load.txt"
}

echo "== 2. POST /v1/rollouts, $CLIENTS clients x $EACH" >&2
api_sqlite="$(api sqlite sqlite)" || failed=1
api_sqlite_1="$(api sqlite-1 sqlite --workers 1)" || failed=1
api_pg="$(api postgres "$(database rg_api)")" || failed=1

echo "== 3. takeover, lease TTL 2 s, $RUNS runs" >&2
takeovers=()
for run in $(seq 1 "$RUNS"); do
  dir="$SCRATCH/takeover-$run"
  mkdir -p "$dir/srv"
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/token")
  state="$(database "rg_takeover_$run")"
  a="$(start_serve "$dir" "$state" a --lease-ttl 2s --scan-interval 100ms)" || { failed=1; continue; }
  b="$(start_serve "$dir" "$state" b --lease-ttl 2s --scan-interval 100ms)" || { failed=1; continue; }
  if ms="$(python3 - "$dir" "$a" "$b" "$(cat "$dir/a.pid")" "$(cat "$dir/b.pid")" <<'PY'
import json, os, signal, sys, time, urllib.request

d, addrs, pids = sys.argv[1], sys.argv[2:4], [int(p) for p in sys.argv[4:6]]
token = open(os.path.join(d, "token")).read().strip()
V1 = "sha256:" + "1" * 64
V2 = "sha256:" + "2" * 64
for t in ("web-1", "web-2"):
    os.makedirs(os.path.join(d, "srv", t), exist_ok=True)
    open(os.path.join(d, "srv", t, "current"), "w").write("v1\n")
open(os.path.join(d, "hold"), "w").close()
plan = f'''service = "web"
artifact = {{ version = "v2", digest = "{V2}" }}
previous = {{ version = "v1", digest = "{V1}" }}
targets = ["web-1", "web-2"]

[deployer]
kind = "command"
deploy = "while [ -e hold ]; do sleep 0.02; done; echo {{version}} > srv/{{target}}/current"
current = "cat srv/{{target}}/current"
ready = "test -s srv/{{target}}/current"
timeout = "60s"

[strategy]
kind = "all-at-once"
'''

def call(addr, method, path, body=None):
    req = urllib.request.Request(f"http://{addr}{path}", data=body, method=method)
    if body is not None:
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Content-Type", "application/toml")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())

rid = call(addrs[0], "POST", "/v1/rollouts", plan.encode())["id"]
# Wait until one server holds the lease and its deploys run.
deadline = time.monotonic() + 60
while True:
    doc = call(addrs[0], "GET", f"/v1/rollouts/{rid}")
    owner = (doc.get("lease") or {}).get("owner", "")
    events = call(addrs[0], "GET", f"/v1/rollouts/{rid}/events")
    if owner and any(e["event"]["type"] == "deploy_intent" for e in events):
        break
    if time.monotonic() > deadline:
        sys.exit("no leader")
    time.sleep(0.02)
leader = next(i for i in range(2) if owner.endswith(f":{pids[i]}"))
other = 1 - leader
os.kill(pids[leader], signal.SIGSTOP)
t0 = time.monotonic()
seen = len(events)
while True:
    events = call(addrs[other], "GET", f"/v1/rollouts/{rid}/events")
    if any(e["event"]["type"] == "controller_started" and e["event"].get("owner") != owner
           for e in events[seen:]):
        break
    if time.monotonic() - t0 > 60:
        sys.exit("no takeover")
    time.sleep(0.01)
took = (time.monotonic() - t0) * 1000
os.kill(pids[leader], signal.SIGCONT)
os.remove(os.path.join(d, "hold"))
deadline = time.monotonic() + 60
while call(addrs[other], "GET", f"/v1/rollouts/{rid}")["status"] != "succeeded":
    if time.monotonic() > deadline:
        sys.exit("the rollout did not finish")
    time.sleep(0.05)
print(f"{took:.0f}")
PY
  )"; then
    takeovers+=("$ms")
    echo "run $run: takeover after ${ms} ms" >&2
  else
    failed=1
  fi
  stop_serve "$dir" a
  stop_serve "$dir" b
done

num() { # TEXT REGEX: the first number after REGEX
  sed -n "s/.*$2 \([0-9.]*\).*/\1/p" <<<"$1" | head -1
}
pg_text="$(cat "$pg_out")"
gc="$(sed -n 's/.*in flight, 30 rounds: \([0-9]*\)\/s.*/\1/p' <<<"$pg_text")"
s1="$(sed -n 's/.*single-row commits, 1 connection: \([0-9]*\)\/s.*/\1/p' <<<"$pg_text")"
s16="$(sed -n 's/.*single-row commits, 16 connections: \([0-9]*\)\/s.*/\1/p' <<<"$pg_text")"
ratio="$(sed -n 's/.*best single-row: \([0-9.]*\)x.*/\1/p' <<<"$pg_text")"
row() { # NAME LINE
  local created
  created="$(sed -n 's/.*: \([0-9]*\) created, \([0-9]*\) errors, \([0-9]*\)\/s.*/\1 created, \2 errors, \3\/s/p' <<<"$2")"
  echo "| $1 | ${created:-?} | $(num "$2" p50) ms | $(num "$2" p90) ms | $(num "$2" p99) ms | $(num "$2" max) ms |"
}

echo
echo "rollgate serve benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), release profile, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
echo
echo "| PostgreSQL durable transitions/s | result |"
echo "|---|---|"
echo "| group commit, 1,000 in flight | ${gc:-?}/s |"
echo "| single-row commits, 1 connection | ${s1:-?}/s |"
echo "| single-row commits, 16 connections | ${s16:-?}/s |"
echo "| group commit / best single-row | ${ratio:-?}x |"
echo
echo "| POST /v1/rollouts, $CLIENTS clients x $EACH | submissions | p50 | p90 | p99 | max |"
echo "|---|---|---|---|---|---|"
row "SQLite file" "$api_sqlite"
row "SQLite file, --workers 1" "$api_sqlite_1"
row "PostgreSQL 15" "$api_pg"
echo
echo "| takeover, lease TTL 2 s ($RUNS runs) | ms |"
echo "|---|---|"
echo "| each run | $(IFS=' '; echo "${takeovers[*]:-?}") |"
if [ "${#takeovers[@]}" -gt 0 ]; then
  echo "| max | $(printf '%s\n' "${takeovers[@]}" | sort -n | tail -1) |"
fi
exit "$failed"
