#!/bin/sh
# Runs once when the PostgreSQL volume is created (docker-entrypoint-initdb.d).
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE chuong_app LOGIN PASSWORD '${CHUONG_APP_DB_PASSWORD}';
SQL
