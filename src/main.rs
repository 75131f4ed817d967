//! The `superinsights` binary: parses the command line and runs it (see `cli`).

fn main() {
    std::process::exit(superinsights::cli::main());
}
