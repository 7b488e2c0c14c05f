# Sourced by .ci/run: a virtual environment with the pinned Python tools the tests drive
# (schemathesis, for tests/tests/server_schema_fuzz.rs). Exports HALTWAY_TEST_SCHEMATHESIS.

setup_python() {
    local venv=target/ci-venv
    if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s tests/fuzz/requirements.txt "$venv/requirements.txt"; then
        rm -rf "$venv"
        python3 -m venv "$venv" || return 1
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/fuzz/requirements.txt || return 1
        cp tests/fuzz/requirements.txt "$venv/requirements.txt"
    fi
    HALTWAY_TEST_SCHEMATHESIS="$(pwd)/$venv/bin/schemathesis"
    export HALTWAY_TEST_SCHEMATHESIS
    echo "schemathesis: $("$HALTWAY_TEST_SCHEMATHESIS" --version)"
}
