#!/usr/bin/env bash
# Runs once, when the postgres container starts on an empty data volume
# (/docker-entrypoint-initdb.d): the two databases of the deployment, owned by POSTGRES_USER.
#   optuna  Optuna study storage (HPO_STORAGE of the workers)
#   mlflow  MLflow tracking server backend store
set -euo pipefail

for db in optuna mlflow; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v db="$db" -v owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
done
