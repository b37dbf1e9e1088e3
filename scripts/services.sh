#!/usr/bin/env bash
# Services some tests need, for CI (`source scripts/services.sh`, then run scripts/test.sh):
# - installs PostgreSQL and Chromium with apt-get when they are missing (root only; a failure is a warning,
#   the tests that need them then skip);
# - starts a throwaway PostgreSQL cluster (as the postgres user when root) on a free port, socket in a temp
#   folder, creates the database llmlab_test and exports LLMLAB_TEST_POSTGRES_URL for tests/abtest;
# - defines llmlab_services_stop, which stops that cluster and removes its folder.
# Idempotent: a second `source` reuses the running cluster. It never makes the caller fail.

_llmlab_pg_bin() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"  # Debian links a few tools from /usr/local/bin
    else
        ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
    fi
}

_llmlab_apt_install() {  # packages wanted: install the missing ones if we can
    [ "$#" -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "services: missing $*; not root or no apt-get, the tests that need them will skip" >&2
        return 0
    fi
    echo "services: installing $*" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
        >/dev/null 2>&1 || echo "services: apt-get install $* failed; the tests that need them will skip" >&2
}

_llmlab_as_owner() {  # initdb and postgres refuse to run as root
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_llmlab_start_postgres() {
    local bin folder port
    bin="$(_llmlab_pg_bin)"
    [ -n "$bin" ] && [ -x "$bin/initdb" ] || { echo "services: no PostgreSQL binaries" >&2; return 1; }
    folder="$(mktemp -d /tmp/llmlab-ci-pg.XXXXXX)" || return 1
    LLMLAB_SERVICES_PG_DIR="$folder"  # from here on llmlab_services_stop cleans up
    LLMLAB_SERVICES_PG_BIN="$bin"
    [ "$(id -u)" != 0 ] || chown postgres "$folder" || return 1
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')" || return 1
    _llmlab_as_owner "$bin/initdb" -D "$folder/data" --auth=trust -U postgres -E UTF8 >"$folder/initdb.log" 2>&1 || return 1
    _llmlab_as_owner "$bin/pg_ctl" -D "$folder/data" -l "$folder/server.log" -w \
        -o "-p $port -k $folder -c listen_addresses=''" start >/dev/null || return 1
    _llmlab_as_owner "$bin/createdb" -h "$folder" -p "$port" -U postgres llmlab_test || return 1
    export LLMLAB_TEST_POSTGRES_URL="postgresql://postgres@/llmlab_test?host=$folder&port=$port"
    echo "services: PostgreSQL on $LLMLAB_TEST_POSTGRES_URL" >&2
}

llmlab_services_stop() {
    [ -n "${LLMLAB_SERVICES_PG_DIR:-}" ] || return 0
    _llmlab_as_owner "$LLMLAB_SERVICES_PG_BIN/pg_ctl" -D "$LLMLAB_SERVICES_PG_DIR/data" -m fast stop >/dev/null 2>&1
    rm -rf "$LLMLAB_SERVICES_PG_DIR"
    unset LLMLAB_SERVICES_PG_DIR LLMLAB_TEST_POSTGRES_URL
}

_llmlab_services() {
    local missing=()
    [ -n "$(_llmlab_pg_bin)" ] || missing+=(postgresql)
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
    _llmlab_apt_install "${missing[@]}"
    [ -n "${LLMLAB_SERVICES_PG_DIR:-}" ] && [ -d "$LLMLAB_SERVICES_PG_DIR" ] && return 0
    if ! _llmlab_start_postgres; then
        echo "services: could not start PostgreSQL; its tests will make their own or skip" >&2
        llmlab_services_stop
    fi
}

_llmlab_services || true
