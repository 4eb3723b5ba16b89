#!/usr/bin/env bash
# Manage a private PostgreSQL cluster owned by the unprivileged `postgres`
# user (PostgreSQL refuses to run as root). The cluster listens only on a
# Unix socket in DIR/run (mode 0700: only postgres and root can connect), so
# nothing is exposed on the network; PORT only names the socket file.
#
#   pg-cluster.sh init  DIR PORT [--throwaway]   create (if absent) and start
#   pg-cluster.sh start DIR PORT                 start an existing cluster
#   pg-cluster.sh stop  DIR                      fast shutdown
#   pg-cluster.sh url   DIR PORT                 print the owner's libpq conninfo
#   pg-cluster.sh app-url DIR PORT               print the services' conninfo
#   pg-cluster.sh free-port                      print a free TCP port
#
# --throwaway turns fsync off: for test clusters that are deleted afterwards.
set -euo pipefail

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] || { echo "pg-cluster: PostgreSQL server binaries not found (run deploy/install-deps.sh)" >&2; exit 1; }

as_pg() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

cmd=${1:-}
case "$cmd" in
  free-port)
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    exit 0 ;;
esac

dir=$(realpath -m "${2:?usage: pg-cluster.sh init|start|stop|url DIR [PORT]}")
port=${3:-5432}
data="$dir/data"
run="$dir/run"
log="$dir/postgres.log"

url() { echo "host=$run port=$port dbname=beacon user=beacon"; }
app_url() { echo "host=$run port=$port dbname=beacon user=beacon_app"; }

# Roles (cluster-wide; created on every init so older clusters gain them):
#   beacon          owns the database and every schema; runs migrations
#   beacon_service  no login; what migrations GRANT to
#   beacon_app      what services connect as: a member of beacon_service,
#                   not an owner and not a superuser, so row-level security
#                   applies to it
#   beacon_check    read-only (pg_read_all_data) past row policies: what
#                   beacon-reporting-check compares the rollups with
ensure_roles() {
  as_pg "$PGBIN/psql" -h "$run" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
    CREATE ROLE beacon_service NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_app') THEN
    CREATE ROLE beacon_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE IN ROLE beacon_service;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_check') THEN
    CREATE ROLE beacon_check LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS
      IN ROLE pg_read_all_data;
  END IF;
END $$;
SQL
}

start() {
  if as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then return 0; fi
  as_pg "$PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -k $run -c listen_addresses=''" start >/dev/null
}

case "$cmd" in
  init)
    mkdir -p "$dir" "$run"
    chown postgres:postgres "$dir" "$run"
    chmod 0700 "$run"
    if [ ! -f "$data/PG_VERSION" ]; then
      as_pg "$PGBIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=reject \
        -E UTF8 --locale=C.UTF-8 >/dev/null
      {
        echo "unix_socket_permissions = 0700"
        echo "max_connections = 200"
        echo "shared_buffers = 128MB"
        echo "jit = off"
        # Group commit: a committing backend waits up to 100 us for others
        # (when at least five are in a transaction) so one WAL flush serves
        # them all; registrations measured about 7% more per second with it.
        echo "commit_delay = 100"
        echo "log_min_messages = warning"
        echo "log_min_error_statement = error"
        if [ "${4:-}" = "--throwaway" ]; then
          echo "fsync = off"
          echo "synchronous_commit = off"
          echo "full_page_writes = off"
        fi
      } | as_pg tee -a "$data/postgresql.conf" >/dev/null
      start
      as_pg "$PGBIN/psql" -h "$run" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE ROLE beacon LOGIN;
CREATE DATABASE beacon OWNER beacon;
SQL
    else
      start
    fi
    ensure_roles
    url ;;
  start) start; url ;;
  stop)
    if [ -f "$data/postmaster.pid" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
    fi ;;
  url) url ;;
  app-url) app_url ;;
  *) echo "usage: pg-cluster.sh init|start|stop|url|app-url DIR [PORT] | free-port" >&2; exit 2 ;;
esac
