#!/bin/bash
# The ledger's PostgreSQL roles (docs/security.md), made at the database's first start
# (/docker-entrypoint-initdb.d). Passwords come from the mounted secrets as psql variables,
# quoted by psql itself.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner="$(cat /run/secrets/postgres-owner.password)" \
  -v writer="$(cat /run/secrets/postgres-writer.password)" \
  -v reader="$(cat /run/secrets/postgres-reader.password)" <<'SQL'
CREATE ROLE ledger_owner LOGIN PASSWORD :'owner';
CREATE ROLE ledger_writer LOGIN PASSWORD :'writer';
CREATE ROLE ledger_reader LOGIN PASSWORD :'reader';
ALTER DATABASE ledger OWNER TO ledger_owner;
REVOKE ALL ON DATABASE ledger FROM PUBLIC;
GRANT CONNECT ON DATABASE ledger TO ledger_owner, ledger_writer, ledger_reader;
SQL
