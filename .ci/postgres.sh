# Sourced by .ci/run: a throw-away PostgreSQL cluster in a temporary folder on a free port,
# stopped on exit whatever happens. Exports HALTWAY_TEST_PG_URL for the tests and
# HALTWAY_TEST_PG_RESTART, a script that restarts the server (for the restart test).

pg_bin() {
    local name=$1
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$found" ] && [ -x "$found/$name" ] && { echo "$found/$name"; return; }
    echo "no $name found (install the PostgreSQL server binaries)" >&2
    return 1
}

start_postgres() {
    local initdb pg_ctl
    initdb=$(pg_bin initdb) || return 1
    pg_ctl=$(pg_bin pg_ctl) || return 1
    PG_DIR=$(mktemp -d /tmp/haltway-pg.XXXXXX)
    chmod 755 "$PG_DIR"
    PG_AS=""
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root.
        chown postgres:postgres "$PG_DIR"
        PG_AS="runuser -u postgres --"
    fi
    PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    $PG_AS "$initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log"; return 1; }
    PG_OPTS="-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300"
    $PG_AS "$pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -o "$PG_OPTS" -w -t 60 start >/dev/null \
        || { cat "$PG_DIR/server.log"; return 1; }
    cat >"$PG_DIR/restart" <<SCRIPT
#!/usr/bin/env bash
# Stops the server as a crash would (immediate), waits \${1:-1} s, starts it again.
set -e
$PG_AS "$pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null
sleep "\${1:-1}"
$PG_AS "$pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -o "$PG_OPTS" -w -t 60 start >/dev/null
SCRIPT
    chmod 755 "$PG_DIR/restart"
    export HALTWAY_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    export HALTWAY_TEST_PG_RESTART="$PG_DIR/restart"
    PG_CTL_BIN=$pg_ctl
    echo "PostgreSQL on port $PG_PORT ($PG_DIR)"
}

stop_postgres() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        $PG_AS "$PG_CTL_BIN" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}
