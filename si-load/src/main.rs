//! `si-load`: the project's load tool. Real HTTP over loopback only (127.0.0.0/8 or ::1), always
//! bounded in time and request count. `ingest` drives the `/v1` API of a running server, `bare`
//! serves a bare axum handler to compare against, and `suite` runs the reproducible end-to-end
//! benchmark whose Markdown table goes into `docs/benchmarks.md`; `redis-compare` runs each
//! Redis piece off and on through the real server, and a Redis outage under traffic; `views`
//! times every analytics view over HTTP, uncached and cached, on each backend.

mod args;
mod bare;
mod client;
mod dashboard;
mod load;
mod mongo;
mod payload;
mod probe;
mod ratelimit;
mod redis_compare;
mod report;
mod sessions;
mod suite;
mod topology;
mod views;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "si-load",
    version,
    about = "Load generator and end-to-end benchmark for superinsights (loopback only)",
    long_about = "Load generator and end-to-end benchmark for superinsights.\n\n\
        Every run is real HTTP/1.1 over loopback (127.0.0.1), bounded in time and in request \
        count. See docs/benchmarks.md for the figures and how to reproduce them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive /v1 ingestion on a running server: closed loop, or open loop with --rate.
    Ingest(args::IngestArgs),
    /// Signed-in GETs of one path (the dashboard's data route) through a server or proxy.
    Pages(args::PagesArgs),
    /// Each Redis topology (one server, Sentinel, Cluster; ingest buffer on or off) in rounds.
    Topologies(topology::TopologyArgs),
    /// Serve a bare axum handler (POST /v1/{channel} → 201) to compare the real server against.
    Bare(args::BareArgs),
    /// The reproducible end-to-end benchmark: fresh server, four load phases, SIGTERM, loss check.
    Suite(args::SuiteArgs),
    /// Cost of rate limiting, in-process: limiter checks (memory, private redis-server) and the layer.
    Ratelimit(ratelimit::RateLimitArgs),
    /// Session lookup latency, in-process: the durable store (SQLite) and Redis in front of it.
    Sessions(sessions::SessionArgs),
    /// Dashboard latency, in-process: seeded demo data, uncached and cached.
    Dashboard(dashboard::DashboardArgs),
    /// Each Redis piece off and on through the real server, then a Redis outage under traffic.
    RedisCompare(redis_compare::CompareArgs),
    /// Every analytics view over HTTP on seeded demo data: uncached and cached, with and without
    /// filters, per backend (SQLite, MongoDB).
    Views(args::ViewsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("si-load: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Ingest(a) => run_ingest(a).await,
            Command::Pages(a) => run_pages(a).await,
            Command::Topologies(a) => topology::run(a).await,
            Command::Bare(a) => bare::serve(a.port, a.max_time).await,
            Command::Suite(a) => suite::run(a).await,
            Command::Ratelimit(a) => ratelimit::run(a).await,
            Command::Sessions(a) => sessions::run(a).await,
            Command::Dashboard(a) => dashboard::run(a).await,
            Command::RedisCompare(a) => redis_compare::run(a).await,
            Command::Views(a) => views::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("si-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_pages(a: args::PagesArgs) -> Result<(), String> {
    let target = args::Target::parse(&a.url)?;
    let (cookie, _) = redis_compare::sign_in(&target, &a.email, &a.password).await?;
    let spec = a.to_spec(cookie)?;
    let r = load::run(&spec).await?;
    let load_average = probe::load_average().map_or("?".into(), |l| format!("{l:.2}"));
    println!(
        "GET {} via {}: {:.0} ok/s over {} connections, p50 {} / p99 {} / max {}, {} not 2xx, load average {load_average}",
        a.path,
        target.url(),
        r.ok_per_sec(),
        a.concurrency,
        report::ms(r.latency.p50),
        report::ms(r.latency.p99),
        report::ms(r.latency.max),
        r.measured.requests - r.measured.ok_2xx,
    );
    if let Some(e) = &r.first_error {
        println!("first error: {e}");
    }
    if r.measured.ok_2xx == 0 {
        return Err("no request was answered with a 2xx status".into());
    }
    Ok(())
}

async fn run_ingest(a: args::IngestArgs) -> Result<(), String> {
    let spec = a.to_spec()?;
    let label = spec.describe_short();
    let phase = suite::measure_phase(label, spec, None, probe::clock_ticks()).await?;
    println!("{}", report::ingest_text(&phase));
    println!("{}", report::phase_table(&[&phase]));
    if phase.result.measured.ok_2xx == 0 {
        return Err("no request was answered with a 2xx status".into());
    }
    Ok(())
}
