#!/usr/bin/env bash
# Fails when a planted secret appears in any file under the given paths.
#
#   scripts/leak-check.sh PATH... -- SECRET...
#
# Prints which file holds which secret (by its length, never the secret) and
# exits 1; exits 0 when none does; 2 on bad usage or when a PATH is missing.
set -euo pipefail

paths=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  paths+=("$1")
  shift
done
[ "${1:-}" = "--" ] || { echo "usage: $0 PATH... -- SECRET..." >&2; exit 2; }
shift
[ "${#paths[@]}" -gt 0 ] && [ "$#" -gt 0 ] || { echo "usage: $0 PATH... -- SECRET..." >&2; exit 2; }
for p in "${paths[@]}"; do
  [ -e "$p" ] || { echo "leak check: $p does not exist" >&2; exit 2; }
done

leaked=0
for secret in "$@"; do
  [ "${#secret}" -ge 8 ] || { echo "leak check: a secret must have at least 8 characters" >&2; exit 2; }
  # -a: binary-looking logs are searched too; -F: the secret is not a pattern.
  if files="$(grep -rlaF -e "$secret" -- "${paths[@]}")"; then
    while IFS= read -r f; do
      echo "leak check: a planted secret (${#secret} characters) appears in $f" >&2
    done <<< "$files"
    leaked=1
  fi
done
if [ "$leaked" = 1 ]; then
  exit 1
fi
echo "leak check: no planted secret in ${paths[*]}" >&2
