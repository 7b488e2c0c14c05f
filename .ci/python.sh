# Sourced by .ci/run: one virtual environment with the pinned Python tools the tests drive:
# schemathesis (tests/tests/server_schema_fuzz.rs) and the official Parallel and Exa clients
# (tests/tests/profiles_sdk.rs). Exports HALTWAY_TEST_SCHEMATHESIS and HALTWAY_TEST_PYTHON.

setup_python() {
    local venv=target/ci-venv
    local wanted
    wanted="$(cat tests/fuzz/requirements.txt tests/sdk/requirements.txt)"
    if [ ! -x "$venv/bin/schemathesis" ] || [ "$wanted" != "$(cat "$venv/requirements.txt" 2>/dev/null)" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv" || return 1
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            -r tests/fuzz/requirements.txt -r tests/sdk/requirements.txt || return 1
        printf '%s' "$wanted" > "$venv/requirements.txt"
    fi
    HALTWAY_TEST_SCHEMATHESIS="$(pwd)/$venv/bin/schemathesis"
    HALTWAY_TEST_PYTHON="$(pwd)/$venv/bin/python"
    export HALTWAY_TEST_SCHEMATHESIS HALTWAY_TEST_PYTHON
    echo "schemathesis: $("$HALTWAY_TEST_SCHEMATHESIS" --version)"
    "$HALTWAY_TEST_PYTHON" -c 'import parallel, exa_py; print("parallel-web", parallel.__version__)'
}
