# Sourced by .ci/run: headless Chromium and its WebDriver server for the dashboard test
# (tests/tests/dashboard.rs), from Debian's `chromium` and `chromium-driver`, installed with
# apt-get when missing. Exports HALTWAY_TEST_CHROMEDRIVER.

setup_chromium() {
    if ! command -v chromedriver > /dev/null || ! command -v chromium > /dev/null; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -q > /dev/null || return 1
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver > /dev/null || return 1
    fi
    HALTWAY_TEST_CHROMEDRIVER="$(command -v chromedriver)"
    export HALTWAY_TEST_CHROMEDRIVER
    echo "chromedriver: $("$HALTWAY_TEST_CHROMEDRIVER" --version)"
}
