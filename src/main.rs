//! The `superinsights` binary: parses the command line and runs it (see `cli`).

/// mimalloc instead of glibc's allocator: the ingest path allocates many small, short-lived
/// values (parsed JSON, enriched documents); see docs/benchmarks.md for what it changed. Built
/// with `no_thp`: on hosts with transparent huge pages always on, its arenas would otherwise be
/// backed by 2 MB pages and idle memory would grow by ~10 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(superinsights::cli::main());
}
