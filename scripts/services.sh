# Shared by scripts/test and scripts/bench-ingest: start (and on exit stop) a throwaway
# PostgreSQL from the distribution's packages and the moto SQS server.
# Callers set MOTO_VERSION, PG_MAJOR, PG_OPTIONS (server -c flags) and INITDB_OPTIONS, and
# `target` (the cargo target dir), then source this file.

say() { printf 'scripts/%s: %s\n' "$(basename "$0")" "$*" >&2; }

pg_dir=""
pg_bin=""
moto_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$moto_pid" ]] && kill -0 "$moto_pid" 2>/dev/null; then
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
    say "stopped moto"
  fi
  if [[ -n "$pg_dir" ]]; then
    if [[ -f "$pg_dir/data/postmaster.pid" ]]; then
      as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
      say "stopped PostgreSQL"
    fi
    rm -rf "$pg_dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

as_postgres() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

wait_for() { # seconds, description, command...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  say "$what did not come up within ${seconds}s"
  return 1
}

start_postgres() {
  pg_bin="/usr/lib/postgresql/$PG_MAJOR/bin"
  if [[ ! -x "$pg_bin/initdb" ]]; then
    if [[ $EUID -ne 0 ]]; then
      say "PostgreSQL $PG_MAJOR is missing: install the postgresql-$PG_MAJOR package, or set DATABASE_URL"
      exit 1
    fi
    say "installing PostgreSQL $PG_MAJOR with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "postgresql-$PG_MAJOR" >/dev/null
  fi
  pg_dir="$(mktemp -d /tmp/statuspage-pg.XXXXXX)"
  if [[ $EUID -eq 0 ]]; then chown postgres: "$pg_dir"; fi
  local port
  port="$(free_port)"
  as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 $INITDB_OPTIONS >/dev/null
  as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -t 60 start -o \
    "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 $PG_OPTIONS -c max_connections=200" >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export STATUSPAGE_TEST_PG_BIN="$pg_bin"
  wait_for 30 "PostgreSQL" "$pg_bin/pg_isready" -h 127.0.0.1 -p "$port"
  say "PostgreSQL $PG_MAJOR on 127.0.0.1:$port (data in $pg_dir)"
}

start_moto() {
  local venv="$target/moto-venv-$MOTO_VERSION"
  if [[ ! -x "$venv/bin/moto_server" ]]; then
    say "installing moto $MOTO_VERSION in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  local port
  port="$(free_port)"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$target/moto.log" 2>&1 &
  moto_pid=$!
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  wait_for 30 "moto" python3 -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/')"
  say "moto $MOTO_VERSION on 127.0.0.1:$port"
}


# The XML validator of the feed tests: lxml (libxml2's RELAX NG) and rnc2rng, pinned, in a venv.
LXML_VERSION=6.1.3
RNC2RNG_VERSION=2.7.0
STANDARDWEBHOOKS_VERSION=1.1.0
AIOSMTPD_VERSION=1.4.6
install_xml_validator() {
  local venv="$target/xml-venv-$LXML_VERSION-$RNC2RNG_VERSION"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import lxml, rnc2rng" 2>/dev/null; then
    say "installing lxml $LXML_VERSION and rnc2rng $RNC2RNG_VERSION in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "lxml==$LXML_VERSION" "rnc2rng==$RNC2RNG_VERSION"
  fi
  export STATUSPAGE_TEST_XML_PYTHON="$venv/bin/python"
}

# The notification tests' receivers: the standardwebhooks package verifies every signature (an
# implementation of Standard Webhooks independent of ours), and aiosmtpd receives the mail; both
# from PyPI, pinned, in a venv.
install_webhook_verifier() {
  local venv="$target/notify-venv-$STANDARDWEBHOOKS_VERSION-$AIOSMTPD_VERSION"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import standardwebhooks, aiosmtpd" 2>/dev/null; then
    say "installing standardwebhooks $STANDARDWEBHOOKS_VERSION and aiosmtpd $AIOSMTPD_VERSION in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "standardwebhooks==$STANDARDWEBHOOKS_VERSION" "aiosmtpd==$AIOSMTPD_VERSION"
  fi
  export STATUSPAGE_TEST_WEBHOOK_PYTHON="$venv/bin/python"
}

# Headless Chromium for the browser test (Debian's package; installed with apt as root).
install_chromium() {
  local bin
  bin="$(command -v chromium || true)"
  if [[ -z "$bin" ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
      say "installing chromium with apt"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
      bin="$(command -v chromium)"
    else
      say "chromium is missing: install Debian's chromium package, or set STATUSPAGE_TEST_CHROMIUM"
      return 1
    fi
  fi
  export STATUSPAGE_TEST_CHROMIUM="$bin"
}
