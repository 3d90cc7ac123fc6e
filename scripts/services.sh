#!/usr/bin/env bash
# What the tests need from the machine: PostgreSQL on 127.0.0.1:5432 (trust auth) and Redis on
# 127.0.0.1:6379 running (started when down), and Debian's packages the tests call installed
# once, before any test runs (so that no two tests install at the same time): pgbouncer (the
# pool's tests start their own PgBouncer in transaction mode), prometheus (promtool checks the
# metrics), chromium and chromium-driver (the console's browser test).
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services: starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
pg_isready -h 127.0.0.1 -p 5432

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping

apt_need() { # apt_need <command> <package>...
  command -v "$1" >/dev/null && return 0
  shift
  echo "services: installing $* (apt)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null \
    || { apt-get update -q >/dev/null \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}
apt_need pgbouncer pgbouncer
# The package's own instance is not used: the tests start theirs on free ports.
service pgbouncer stop >/dev/null 2>&1 || true
apt_need promtool prometheus
apt_need chromedriver chromium chromium-driver
pgbouncer --version | head -1
promtool --version 2>&1 | head -1
chromium --version 2>/dev/null
