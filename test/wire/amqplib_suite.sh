#!/usr/bin/env bash
# amqplib_suite.sh WARREN_BIN PKG_DIR WORK_DIR: runs amqplib's own test
# suite (PKG_DIR: the unpacked npm package, with its test/ folder) against
# Warren. Run inside a fresh network namespace (unshare -n): amqplib's
# tests connect to amqp://localhost (127.0.0.1 and ::1) on port 5672
# without asking, so Warren listens there, alone, in the namespace. Prints
# node's TAP output; test_26_amqplib.py judges it.
set -euo pipefail
bin=$1 pkg=$2 work=$3
ip link set lo up
mkdir -p "$work/data"
cat >"$work/warren.conf" <<CONF
listeners.tcp.v4 = 127.0.0.1:5672
listeners.tcp.v6 = ::1:5672
management.tcp.port = 0
prometheus.tcp.port = 0
CONF
"$bin" --config "$work/warren.conf" --data-dir "$work/data" \
  2>"$work/warren.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "listening on \[::1\]:5672" "$work/warren.log" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$work/warren.log" >&2; exit 1; }
  sleep 0.1
done
cd "$pkg"
# The suite's own timeout is 1 s per test; this machine is shared and
# sanitizer builds are slow, so each test gets 20 s.
timeout 600 node --test --test-timeout=20000 --test-reporter=tap test/ || true
