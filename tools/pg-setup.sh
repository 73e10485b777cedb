#!/usr/bin/env bash
# For people: installs PostgreSQL (and haproxy, for the replica tests) from Debian's packages when
# absent, creates and starts a cluster with pg_ctlcluster, creates a role and database for the
# service, and prints the STORE_URL to start replicas with. Safe to run again.
#   npm run pg:setup                       # cluster "main", database/role "embeddings"
#   PG_CLUSTER=emb PG_PORT=5433 npm run pg:setup
# The tests do not need this: they start their own throwaway clusters from the same binaries.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian's packages"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)
CLUSTER=${PG_CLUSTER:-main}
DB=${PG_DATABASE:-embeddings}
ROLE=${PG_ROLE:-embeddings}
PASSWORD=${PG_PASSWORD:-embeddings}
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$VERSION/$CLUSTER"; then
  $SUDO pg_createcluster ${PG_PORT:+--port "$PG_PORT"} "$VERSION" "$CLUSTER" >/dev/null
fi
status=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')
[ "$status" = "online" ] || $SUDO pg_ctlcluster "$VERSION" "$CLUSTER" start
PORT=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $3}')
psql_pg() { $SUDO -u postgres psql -X -p "$PORT" -v ON_ERROR_STOP=1 -tA "$@"; }
if [ "$(id -u)" -eq 0 ]; then psql_pg() { runuser -u postgres -- psql -X -p "$PORT" -v ON_ERROR_STOP=1 -tA "$@"; }; fi
[ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" = "1" ] ||
  psql_pg -c "CREATE ROLE \"$ROLE\" LOGIN PASSWORD '$PASSWORD'" >/dev/null
[ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" = "1" ] ||
  psql_pg -c "CREATE DATABASE \"$DB\" OWNER \"$ROLE\"" >/dev/null
echo "PostgreSQL $VERSION cluster $CLUSTER is online on port $PORT"
echo "STORE_URL=postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
