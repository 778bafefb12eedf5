#!/usr/bin/env bash
# Side-by-side benchmark of rollgate-drift against peers on two generated
# documents (default 2 x 100 MB, 300 real changes, every keyed list
# reordered). Prints one line per tool; BENCHMARKS.md quotes a run.
#
#   bash scripts/drift-bench.sh [MB] [CHANGES]
#   PEERS="json-patch microdiff" bash scripts/drift-bench.sh 10
#   REPEAT=3 bash scripts/drift-bench.sh       # the rollgate / json-patch rounds 3 times
#   IDLE=0 bash scripts/drift-bench.sh         # no idle wait before each cold run
#
# Peers: the json-patch crate (built here), microdiff and jsondiffpatch
# (npm), jsondiff and deepdiff (pip). Each peer gets PEER_TIMEOUT seconds
# (default 600) and PEER_MEM_GB of memory (default 8). Everything is written
# under target/drift-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

mb="${1:-100}"
changes="${2:-300}"
peers="${PEERS:-json-patch microdiff jsondiffpatch jsondiff deepdiff}"
timeout_s="${PEER_TIMEOUT:-600}"
# Memory cap per peer (GB): the Python differs grow past 19 GB on 2x100 MB,
# which would starve everything else on the machine.
mem_gb="${PEER_MEM_GB:-8}"
work="$PWD/target/drift-bench"
data="$work/data-${mb}mb"
mkdir -p "$work"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$work/cargo}"
cargo build --release --quiet --manifest-path benches/drift/Cargo.toml
bin="$CARGO_TARGET_DIR/release/rollgate-drift-bench"

if [ ! -f "$data/expected.txt" ]; then
  "$bin" gen "$data" "$mb" "$changes" 42
fi

need_node=0
need_py=0
for p in $peers; do
  case "$p" in
    microdiff|jsondiffpatch) need_node=1 ;;
    jsondiff|deepdiff) need_py=1 ;;
  esac
done
if [ "$need_node" = 1 ] && [ ! -d "$work/node/node_modules/jsondiffpatch" ]; then
  mkdir -p "$work/node"
  cp benches/drift/node/package.json "$work/node/"
  (cd "$work/node" && npm install --silent --no-audit --no-fund)
fi
if [ "$need_py" = 1 ] && ! python3 -c "import jsondiff, deepdiff" >/dev/null 2>&1; then
  python3 -m pip install --quiet jsondiff deepdiff
fi

# CPU seconds and peak memory per tool, from /usr/bin/time when present
# (wall time alone is unfair on a shared, loaded machine).
timed=()
if [ -x /usr/bin/time ]; then
  timed=(/usr/bin/time -f "  cpu_user_s=%U cpu_sys_s=%S max_rss_kb=%M")
fi

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); data: $(du -sh "$data" | cut -f1) in $data"
# rollgate-drift and the json-patch crate (the fastest peer) in every process
# setting, like for like: after IDLE seconds with nothing running (on a VM
# the host takes idle memory back, and a fresh process then pays to fault it
# in again: "cold"), then once more at once ("warm"). Configurations:
#   rollgate           mimalloc, transparent huge pages off (what `rollgate` does)
#   json-patch         the same process settings as rollgate
#   json-patch-peer    the system allocator, as the crate's users build it
#   ... thp-on         mimalloc with its transparent huge pages left on
peer_bin="$CARGO_TARGET_DIR/release/json-patch-peer"
run_pair() { # label, command...
  local label="$1"; shift
  sleep "${IDLE:-12}"
  echo "# $label cold"
  "${timed[@]}" "$@" 2>&1 | grep -E "^(tool=|  cpu_)" || echo "tool=$label failed"
  echo "# $label warm"
  "${timed[@]}" "$@" 2>&1 | grep -E "^(tool=|  cpu_)" || echo "tool=$label failed"
}
for _ in $(seq "${REPEAT:-1}"); do
  run_pair "rollgate" "$bin" rollgate "$data"
  case " $peers " in *" json-patch "*)
    run_pair "json-patch" timeout "$timeout_s" "$bin" json-patch "$data"
    run_pair "json-patch-peer" timeout "$timeout_s" "$peer_bin" "$data"
    run_pair "json-patch thp-on" env DRIFT_BENCH_THP=on timeout "$timeout_s" "$bin" json-patch "$data"
    ;;
  esac
  run_pair "rollgate thp-on" env DRIFT_BENCH_THP=on "$bin" rollgate "$data"
done
"${timed[@]}" "$bin" rollgate "$data" "$PWD/benches/drift/rules.toml" | sed 's/^tool=rollgate-drift/tool=rollgate-drift+rules/'
for p in $peers; do
  [ "$p" = json-patch ] && continue
  case "$p" in
    microdiff|jsondiffpatch) cmd=(node --max-old-space-size=$((mem_gb * 1024)) "$PWD/benches/drift/node/run.mjs" "$p" "$data") ;;
    jsondiff|deepdiff) cmd=(bash -c "ulimit -v $((mem_gb * 1024 * 1024)); exec python3 benches/drift/python/run.py $p $data") ;;
    *) echo "unknown peer $p" >&2; exit 2 ;;
  esac
  if [ "$p" = microdiff ] || [ "$p" = jsondiffpatch ]; then
    (cd "$work/node" && "${timed[@]}" timeout "$timeout_s" "${cmd[@]}") 2>&1 | grep -E "^(tool=|  cpu_|FATAL)" \
      || echo "tool=$p no_result_within_s=$timeout_s (timed out or failed)"
  else
    "${timed[@]}" timeout "$timeout_s" "${cmd[@]}" 2>&1 | grep -E "^(tool=|  cpu_|MemoryError)" \
      || echo "tool=$p no_result_within_s=$timeout_s (timed out or failed)"
  fi
  echo "  load $(cut -d' ' -f1-3 /proc/loadavg)"
done
"${timed[@]}" "$bin" rollgate "$data"
