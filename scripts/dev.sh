#!/usr/bin/env bash
# Development entry point behind `make run` and `make test` (and .ci/run).
#   scripts/dev.sh setup   venv + dependencies + local PostgreSQL/Redis + database + migrations
#   scripts/dev.sh run     setup, then API + workers (one urgent) + FCM/APNs emulator in the foreground
#   scripts/dev.sh test    setup of the venv and services, then ruff, mypy and pytest (in parallel:
#                          CHUONG_TEST_WORKERS, default 4; 0 runs it serially)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
PG_HOST=127.0.0.1
PG_PORT=5432
export PGHOST=$PG_HOST PGPORT=$PG_PORT PGUSER=${PGUSER:-postgres}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  local stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    log "installing dependencies"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -e '.[dev]'
    rm -f "$VENV"/.installed-* && touch "$stamp"
  fi
}

ensure_postgres() {
  if pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; then return; fi
  if ! ls /etc/postgresql >/dev/null 2>&1; then
    log "installing PostgreSQL"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && return; sleep 1; done
  echo "PostgreSQL did not start" >&2; exit 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  if ! command -v redis-server >/dev/null; then
    log "installing Redis"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  log "starting Redis"
  mkdir -p /tmp/chuong-redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /tmp/chuong-redis
  for _ in $(seq 1 30); do redis-cli ping >/dev/null 2>&1 && return; sleep 0.5; done
  echo "Redis did not start" >&2; exit 1
}

ensure_database() {
  # The service connects as chuong_app, which owns nothing and may not change the audit log;
  # migrations run as the owner (postgres).
  psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='chuong_app'" postgres | grep -q 1 \
    || psql -qc "CREATE ROLE chuong_app LOGIN" postgres
  psql -qtAc "SELECT 1 FROM pg_database WHERE datname='chuong'" postgres | grep -q 1 \
    || psql -qc "CREATE DATABASE chuong" postgres
  [ -f .env ] || "$VENV/bin/chuong" init-env
  CHUONG_MIGRATION_DATABASE_URL="postgresql+asyncpg://postgres@$PG_HOST:$PG_PORT/chuong" "$VENV/bin/chuong" migrate
}

ensure_test_tools() {
  # Debian packages the tests drive for real: Chromium (the console's browser tests, through
  # Playwright, never a downloaded build), pgBackRest (the backup drill, tests/backup), promtool
  # and prometheus itself from the prometheus package (the alert rules, and a live Prometheus in
  # tests/deploy/test_live_prometheus.py), amtool from prometheus-alertmanager (the alert routes)
  # and nginx (the reverse-proxy example, tests/deploy/test_nginx_example.py), libfaketime (a
  # worker whose wall clock steps, tests/support/stepped_clock.py). The tests run their
  # own instances; the packages' services stay off.
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v pgbackrest >/dev/null || missing+=(pgbackrest)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || missing+=(libfaketime)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]} (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

cmd_setup() {
  ensure_venv; ensure_postgres; ensure_redis; ensure_database
}

# Ctrl-C reaches every process of the terminal's foreground group: the API and the workers shut
# down by themselves; the emulator, a background job of this script, ignores SIGINT and gets
# SIGTERM here. Waiting for them all keeps their last lines before the prompt, and exiting 0
# keeps make from reporting "Error 130" for a stop that was asked for, also mid-start-up.
stop_children() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}

cmd_run() {
  pids=()
  trap 'stop_children; exit 0' INT TERM
  trap stop_children EXIT
  cmd_setup
  export CHUONG_DATABASE_URL="postgresql+asyncpg://chuong_app@$PG_HOST:$PG_PORT/chuong"
  mkdir -p .run
  log "starting the FCM/APNs emulator (control :8440, FCM :8441, APNs :8442)"
  # The emulator is dev tooling outside the shipped package; it writes its CA, a service-account
  # file and a .p8 key, and the app reaches it through its ordinary provider settings, exactly as
  # it reaches Google and Apple in production (docs/delivery.md "Providers").
  rm -f .run/emulator/fcm-service-account.json .run/emulator/apns-key.p8
  "$VENV/bin/python" -m emulator --ca-path .run/emulator-ca.pem --credentials-dir .run/emulator & pids+=($!)
  export CHUONG_FCM_ENDPOINT=https://127.0.0.1:8441
  export CHUONG_FCM_CREDENTIALS_FILE=.run/emulator/fcm-service-account.json
  export CHUONG_APNS_ENDPOINT_HOST=127.0.0.1 CHUONG_APNS_ENDPOINT_PORT=8442
  export CHUONG_APNS_KEY_FILE=.run/emulator/apns-key.p8
  export CHUONG_APNS_KEY_ID=EMULATORK1 CHUONG_APNS_TEAM_ID=EMULATORT1 CHUONG_APNS_TOPIC=vn.chuong.app
  export CHUONG_PROVIDER_CA_FILE=.run/emulator-ca.pem
  export CHUONG_SMS_GATEWAY_URL=http://127.0.0.1:8440/sms/send
  for _ in $(seq 1 60); do [ -f .run/emulator/apns-key.p8 ] && break; sleep 0.5; done
  [ -f .run/emulator/apns-key.p8 ] || { echo "the emulator did not start" >&2; exit 1; }
  # A broadcast's send batches are shared by every worker of its queue and a worker is one
  # process (one core): one high-queue worker per core by default (docs/delivery.md).
  # Beside them an urgent worker: only first pages, the tracking sweep and sender and news
  # releases, never a broadcast's batches, so a breaking-news item does not wait in an event loop
  # saturated by a broadcast (docs/delivery.md "The urgent worker"; CHUONG_URGENT_WORKERS=0: none).
  local high_workers="${CHUONG_HIGH_WORKERS:-$(nproc)}"
  local urgent_workers="${CHUONG_URGENT_WORKERS:-1}"
  log "starting the workers ($high_workers on the high queue, $urgent_workers urgent, 1 on the bulk queue)"
  for _ in $(seq "$high_workers"); do "$VENV/bin/chuong" worker --queue high & pids+=($!); done
  for _ in $(seq "$urgent_workers"); do "$VENV/bin/chuong" worker --queue high --urgent-only & pids+=($!); done
  "$VENV/bin/chuong" worker --queue bulk & pids+=($!)
  log "API on http://127.0.0.1:8000 (OpenAPI: /docs). First account: .venv/bin/chuong admin create"
  # In the background too, so that a Ctrl-C while it is still importing stops it through the trap
  # (no KeyboardInterrupt traceback); once running, uvicorn takes SIGINT itself and shuts down.
  "$VENV/bin/chuong" serve --host 127.0.0.1 --port 8000 & pids+=($!)
  wait "$!"
}

cmd_test() {
  ensure_venv; ensure_postgres; ensure_redis; ensure_test_tools
  log "ruff"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  log "mypy"
  "$VENV/bin/mypy" .
  # pytest-xdist: CHUONG_TEST_WORKERS processes share the tests (default 4: most tests wait on
  # PostgreSQL, Redis, sockets or subprocesses, so 4 keep 2 cores busy). Each worker has its own
  # template database and Redis database (tests/conftest.py). CHUONG_TEST_WORKERS=0, or
  # `-n 0` among the pytest arguments (the last -n wins), runs the suite serially in one process.
  # loadfile: a test file's tests run in one worker, so a module fixture (the wheel build, a
  # scratch cluster) is built once. (loadgroup does not group under pytest 9.2: xdist issue 1386.)
  # Tests marked `alone` measure the service under a load of their own (a thousand open streams):
  # beside three other workers' tests on 2 cores their bounded waits were the machine's, not the
  # service's. They run afterwards, by themselves (exit code 5 is "none selected by the args").
  local workers="${CHUONG_TEST_WORKERS:-4}"
  if [[ "$workers" == "0" ]]; then
    log "pytest (one process)"
    "$VENV/bin/pytest" -n 0 "$@"
    return
  fi
  log "pytest ($workers workers; CHUONG_TEST_WORKERS=0 for one process)"
  "$VENV/bin/pytest" -n "$workers" --dist loadfile -m "not alone" "$@"
  log "pytest (the tests that run alone)"
  local code=0
  "$VENV/bin/pytest" -n 0 -m alone "$@" || code=$?
  [[ $code == 0 || $code == 5 ]] || exit "$code"
}

case "${1:-}" in
  setup) cmd_setup ;;
  run) cmd_run ;;
  test) shift; cmd_test "$@" ;;
  *) echo "usage: $0 setup|run|test [pytest args]" >&2; exit 2 ;;
esac
