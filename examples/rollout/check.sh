#!/bin/sh
# Demo gate: reads the health figures each sample artifact ships (canned
# numbers standing in for real telemetry) from every target that runs
# VERSION, and judges them against p99 <= 500 ms and errors <= 1 %.
# Exit 0 promote, 1 rollback, 3 hold (no target to judge).
service=$1 version=$2 percent=$3
judged=0
for cur in srv/*/current; do
  [ "$(cat "$cur")" = "$version" ] || continue
  dir=$(dirname "$cur")
  p99=$(awk '$1 == "p99_ms" { print $2 }' "$dir/health")
  err=$(awk '$1 == "error_ratio" { print $2 }' "$dir/health")
  judged=$((judged + 1))
  if awk -v p="$p99" -v e="$err" 'BEGIN { exit !(p > 500 || e > 0.01) }'; then
    echo "$service $version at $percent%: $(basename "$dir") p99 ${p99}ms (bound 500ms), error ratio $err (bound 0.01)"
    exit 1
  fi
done
if [ "$judged" -eq 0 ]; then
  echo "$service $version at $percent%: no target runs $version yet"
  exit 3
fi
echo "$service $version at $percent%: $judged target(s) within p99 <= 500ms and errors <= 1%"
exit 0
