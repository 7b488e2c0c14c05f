//! `haltway`: see `haltway --help`.

fn main() -> std::process::ExitCode {
    haltway_server::main()
}
