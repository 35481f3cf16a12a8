//! The `tribune` binary: parse the command line and hand off.

fn main() {
    std::process::exit(tribune_agent::cli::main());
}
