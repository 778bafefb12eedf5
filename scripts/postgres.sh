#!/usr/bin/env bash
# A throwaway PostgreSQL 15 on loopback for tests and CI.
#
#   scripts/postgres.sh start WORKDIR
#       Installs Debian's postgresql-15 if initdb is missing (apt-get update,
#       --no-install-recommends), creates a cluster in WORKDIR/data with a
#       random password (scram-sha-256, no trust), starts it on 127.0.0.1 on a
#       free port (no Unix socket outside WORKDIR), waits until it answers,
#       and writes the URL to WORKDIR/postgres.url (mode 600).
#   scripts/postgres.sh stop WORKDIR
#       Stops the server (pg_ctl stop -m fast) and deletes WORKDIR.
#   scripts/postgres.sh halt WORKDIR
#       Kills the server as a crash would (pg_ctl stop -m immediate), keeping
#       its data: clients see the store unreachable.
#   scripts/postgres.sh resume WORKDIR
#       Starts a halted server again on the same port (crash recovery).
#   scripts/postgres.sh run CMD [ARG...]
#       start in a temporary WORKDIR, runs CMD with ROLLGATE_TEST_POSTGRES_URL
#       (and ROLLGATE_TEST_POSTGRES_DIR, the WORKDIR, for halt and resume)
#       set, always stops; exits with CMD's status.
#
# Environment:
#   ROLLGATE_PG_PASSWORD   the password to give the cluster instead of a
#                          random one (scripts/test.sh plants one and checks
#                          that it appears in no output); at least 16 characters
#                          of [A-Za-z0-9_-], as it goes into the URL unescaped.
#   ROLLGATE_PG_LOG_DIR    when set, `stop` copies the server's log there
#                          (as postgres-PID.log) before deleting WORKDIR.
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# `postgres` user (created by the package) and runs through runuser.
set -euo pipefail

usage() {
  echo "usage: $0 start WORKDIR | stop WORKDIR | halt WORKDIR | resume WORKDIR | run CMD [ARG...]" >&2
  exit 2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

bindir() {
  local d
  for d in /usr/lib/postgresql/15/bin; do
    if [ -x "$d/initdb" ]; then
      echo "$d"
      return
    fi
  done
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return
  fi
  return 1
}

install_postgres() {
  if ! bindir >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15
  fi
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local workdir="$1"
  install_postgres
  local bin
  bin="$(bindir)"
  mkdir -p "$workdir"
  workdir="$(cd "$workdir" && pwd)"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$workdir"
  fi
  local password
  if [ -n "${ROLLGATE_PG_PASSWORD:-}" ]; then
    if ! [[ "$ROLLGATE_PG_PASSWORD" =~ ^[A-Za-z0-9_-]{16,}$ ]]; then
      echo "ROLLGATE_PG_PASSWORD must be at least 16 characters of [A-Za-z0-9_-]" >&2
      exit 2
    fi
    password="$ROLLGATE_PG_PASSWORD"
  else
    password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  fi
  (umask 077 && printf '%s\n' "$password" > "$workdir/pwfile")
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$workdir/pwfile"
  fi
  as_owner "$bin/initdb" -D "$workdir/data" -U rollgate --pwfile="$workdir/pwfile" \
    --auth=scram-sha-256 -E UTF8 --no-locale > "$workdir/initdb.log" 2>&1 || {
    cat "$workdir/initdb.log" >&2
    exit 1
  }
  rm -f "$workdir/pwfile"
  local port="" attempt ok=""
  for attempt in 1 2 3; do
    port="$(free_port)"
    if as_owner "$bin/pg_ctl" -D "$workdir/data" -l "$workdir/postgres.log" -w -t 30 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $workdir -c max_connections=200 -c fsync=on" \
      > /dev/null; then
      ok=1
      break
    fi
  done
  echo "$port" > "$workdir/port"
  if [ -z "$ok" ]; then
    echo "postgres did not start; log:" >&2
    cat "$workdir/postgres.log" >&2 || true
    exit 1
  fi
  (umask 077 && echo "postgres://rollgate:$password@127.0.0.1:$port/postgres" > "$workdir/postgres.url")
  echo "postgres 15 on 127.0.0.1:$port (data in $workdir/data, URL in $workdir/postgres.url)" >&2
}

stop() {
  local workdir="$1"
  [ -d "$workdir" ] || return 0
  local bin
  if bin="$(bindir)" && [ -f "$workdir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$workdir/data" -m fast -w stop > /dev/null || true
  fi
  if [ -n "${ROLLGATE_PG_LOG_DIR:-}" ] && [ -f "$workdir/postgres.log" ]; then
    mkdir -p "$ROLLGATE_PG_LOG_DIR"
    cp "$workdir/postgres.log" "$ROLLGATE_PG_LOG_DIR/postgres-$$.log" || true
  fi
  rm -rf "$workdir"
}

halt() {
  local workdir="$1" bin
  bin="$(bindir)"
  as_owner "$bin/pg_ctl" -D "$workdir/data" -m immediate -w stop > /dev/null
}

resume() {
  local workdir="$1" bin port
  bin="$(bindir)"
  port="$(cat "$workdir/port")"
  as_owner "$bin/pg_ctl" -D "$workdir/data" -l "$workdir/postgres.log" -w -t 30 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $workdir -c max_connections=200 -c fsync=on" \
    > /dev/null
}

cmd="${1:-}"
case "$cmd" in
  start)
    [ -n "${2:-}" ] || usage
    start "$2"
    ;;
  stop)
    [ -n "${2:-}" ] || usage
    stop "$2"
    ;;
  halt)
    [ -n "${2:-}" ] || usage
    halt "$2"
    ;;
  resume)
    [ -n "${2:-}" ] || usage
    resume "$2"
    ;;
  run)
    shift
    [ "$#" -ge 1 ] || usage
    workdir="$(mktemp -d /tmp/rollgate-pg.XXXXXX)"
    trap 'stop "$workdir"' EXIT INT TERM
    start "$workdir"
    status=0
    ROLLGATE_TEST_POSTGRES_URL="$(cat "$workdir/postgres.url")" \
      ROLLGATE_TEST_POSTGRES_DIR="$workdir" "$@" || status=$?
    exit "$status"
    ;;
  *)
    usage
    ;;
esac
