#!/usr/bin/env bash
# Runs the store benchmarks and records the machine's fsync latency before
# and after, because on a shared VM the disk's speed drifts and every figure
# is only meaningful next to it. Usage: scripts/bench-stores.sh [count]
set -euo pipefail
count=${1:-6}
fsync() {
  local t; t=$(ls /usr/lib/postgresql/*/bin/pg_test_fsync 2>/dev/null | tail -n1)
  if [ -n "$t" ]; then
    "$t" -s 1 -f "$(mktemp)" 2>/dev/null | awk '/fdatasync/ && /usecs/ {print $(NF-1) " µs per fdatasync"; exit}'
  else
    echo "fsync latency: pg_test_fsync not installed"
  fi
}
# A yardstick taken at the same moment: PostgreSQL's own simple-update
# workload (pgbench -N: 5 statements and one commit per transaction, 16
# clients), if pgbench and a server on 127.0.0.1 are there.
yardstick() {
  local pgb; pgb=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n1)
  [ -n "$pgb" ] && pg_isready -q -h 127.0.0.1 2>/dev/null || { echo "pgbench: not available"; return; }
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS dg_yardstick" -c "CREATE DATABASE dg_yardstick" postgres >/dev/null 2>&1
  "$pgb" -q -h 127.0.0.1 -U postgres -i -s 1 dg_yardstick >/dev/null 2>&1
  "$pgb" -h 127.0.0.1 -U postgres -N -c 16 -j 2 -T 8 dg_yardstick 2>/dev/null | awk '/^tps/ {printf "%d tps (pgbench -N -c 16)\n", $3}'
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE dg_yardstick" postgres >/dev/null 2>&1
}
echo "before: $(fsync); $(yardstick)"
go test -run '^$' -bench 'BenchmarkStore' -benchtime 3s -count "$count" ./internal/sqlite ./internal/postgres \
  | awk '/^pkg/{p=$2; sub(".*/internal/","",p)} /^Benchmark/{k=p" "$1; v[k]=v[k]" "$5; u[k]=$6} END{for(k in v) print k ":" v[k] " " u[k]}' | sort
echo "after:  $(fsync); $(yardstick)"
