//! Command-line arguments of the HTTP subcommands and the parsing of their values: durations
//! (`10s`, `500ms`, `2m`) and loopback-only base URLs. Limits live here, so that every run is
//! bounded in time and in request count before anything is sent.

use crate::{load::LoadSpec, payload::Channel};
use clap::Args;
use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

/// Longest measured duration of one load phase.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most connections one phase may open.
pub const MAX_CONCURRENCY: usize = 1024;
/// Highest open-loop request rate.
pub const MAX_RATE: f64 = 200_000.0;

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Base URL of the server; must be a loopback address, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    pub url: String,
    /// Project API key (pk_… or sk_…), sent as `Authorization: Bearer` like the SDK does.
    #[arg(long, env = "SI_LOAD_KEY", hide_env_values = true)]
    pub key: String,
    /// Items per request (1–100, the server's limit).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub batch: u16,
    /// Connections, one worker each (closed loop: requests in flight).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Measured duration (`10s`, `500ms`, `1m`), at most 10 minutes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load applied before measuring, not counted in the figures.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: send this many requests per second on a fixed schedule, latency counted from
    /// the scheduled send time. Without it the load is closed loop (send, wait, send).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Ingestion channel the bodies are built for.
    #[arg(long, value_enum, default_value_t = Channel::Events)]
    pub channel: Channel,
    /// How old a batch's items are when sent, spread evenly: the SDK queues for up to 5 s. A long
    /// spread (`1h`) imitates backfills and late clients, whose inserts land all over the
    /// timestamp indexes.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timestamp_spread: Duration,
    /// Per-request timeout; a request that takes longer counts as a transport error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Hard cap on requests sent (warm-up included).
    #[arg(long, default_value_t = 20_000_000)]
    pub max_requests: u64,
}

impl IngestArgs {
    pub fn to_spec(&self) -> Result<LoadSpec, String> {
        let spec = LoadSpec {
            target: Target::parse(&self.url)?,
            key: self.key.trim().to_string(),
            channel: self.channel,
            batch: self.batch as usize,
            concurrency: self.concurrency,
            warmup: self.warmup,
            duration: self.duration,
            rate: self.rate,
            timestamp_spread: self.timestamp_spread,
            timeout: self.timeout,
            max_requests: self.max_requests,
            get: None,
        };
        spec.validate()?;
        Ok(spec)
    }
}

/// `si-load pages`: signed-in `GET`s of one path, closed loop (dashboard throughput).
#[derive(Args, Debug)]
pub struct PagesArgs {
    /// Base URL of the server or of the proxy in front of it; loopback only.
    #[arg(long)]
    pub url: String,
    /// The path and query to fetch, e.g. `/projects/ID/dashboard/data?timeframe=7d`.
    #[arg(long)]
    pub path: String,
    /// Account to sign in with through the login form (the session cookie is then shared by
    /// every connection, as one dashboard user's tabs would).
    #[arg(long, default_value = crate::redis_compare::EMAIL)]
    pub email: String,
    #[arg(long, env = "SI_LOAD_PASSWORD", hide_env_values = true, default_value = crate::redis_compare::PASSWORD)]
    pub password: String,
    /// Connections, one worker each (requests in flight).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Measured duration, at most 10 minutes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load applied before measuring, not counted.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Hard cap on requests sent (warm-up included).
    #[arg(long, default_value_t = 5_000_000)]
    pub max_requests: u64,
}

impl PagesArgs {
    /// The load phase, given the session cookie.
    pub fn to_spec(&self, cookie: String) -> Result<LoadSpec, String> {
        let spec = LoadSpec {
            target: Target::parse(&self.url)?,
            key: "-".into(),
            channel: Channel::Events,
            batch: 1,
            concurrency: self.concurrency,
            warmup: self.warmup,
            duration: self.duration,
            rate: None,
            timestamp_spread: Duration::from_secs(5),
            timeout: self.timeout,
            max_requests: self.max_requests,
            get: Some(crate::load::GetPage {
                path: self.path.clone(),
                cookie,
            }),
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[derive(Args, Debug)]
pub struct BareArgs {
    /// Port to listen on (127.0.0.1 only).
    #[arg(long)]
    pub port: u16,
    /// Exit after this long even without a signal, so a forgotten process cannot linger.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub max_time: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct SuiteArgs {
    /// The server binary to benchmark.
    #[arg(long, default_value = "target/release/superinsights")]
    pub binary: PathBuf,
    /// Measured seconds of each load phase (1–120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub seconds: u64,
    /// Repeat the whole suite (fresh server and data each time) and report per-metric medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub runs: u32,
    /// Connections of the closed-loop phases and of the open-loop phase.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Items per request in the batch phase.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub batch: u16,
    /// Request rate of the open-loop phase.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Age range of a batch's items when sent (see `si-load ingest --help`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timestamp_spread: Duration,
    /// Warm-up before each phase, not counted in its figures (but counted in the loss check).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// How long the server sits idle after startup before its idle RSS is read.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub idle: Duration,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory in which each run's fresh DATA_DIR is created (default: the system temp dir).
    /// Its filesystem decides what an fsync costs.
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
    /// Keep each run's DATA_DIR (database, spool, server log) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Extra server environment, `NAME=value` (repeatable; overrides the suite's defaults). By
    /// default the ingest rate limits are raised far above the load (`1000000000/60s`) so they are
    /// exercised on every request without ever answering 429.
    #[arg(long = "server-env", value_parser = parse_env_pair)]
    pub server_env: Vec<(String, String)>,
    /// Store on this MongoDB (loopback only) instead of SQLite: each run gets a fresh database
    /// (`MONGODB_DB`), counted there and dropped at the end unless `--keep`.
    #[arg(long, value_parser = parse_loopback_mongodb_uri)]
    pub mongodb_uri: Option<String>,
    /// Before the server starts, fill its store with this many demo documents (`superinsights
    /// seed-demo`, 30 days, in a project of their own), so the phases write into a database of
    /// that size; the loss check counts only what the phases added.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=20_000_000))]
    pub seed_events: u64,
}

fn parse_loopback_mongodb_uri(uri: &str) -> Result<String, String> {
    crate::mongo::uri_is_loopback(uri)?;
    Ok(uri.trim().to_string())
}

/// A storage backend the `views` benchmark starts the server on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Embedded SQLite in the run's `DATA_DIR`.
    Sqlite,
    /// `MONGODB_URI` (`--mongodb-uri`), a fresh database per run.
    Mongodb,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mongodb => "mongodb",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ViewsArgs {
    /// The server binary (`cargo build --release --bin superinsights`).
    #[arg(long, default_value = "target/release/superinsights")]
    pub binary: PathBuf,
    /// Demo documents seeded per backend (page views, events, errors, web vitals together).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1_000..=20_000_000))]
    pub events: u64,
    /// Days before now the demo documents are spread over.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub days: u32,
    /// Measured samples per view, filter set and cache state (after one unmeasured warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub runs: u32,
    /// Timeframe of every view (`?timeframe=`): 5m, 30m, 1h, 6h, 12h, 24h, 7d, 30d, 3m, 1y.
    #[arg(long, default_value = "30d")]
    pub timeframe: String,
    /// Backends to measure, one server each, in this order (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite")]
    pub backends: Vec<Backend>,
    /// MongoDB (or FerretDB) to use for the `mongodb` backend, loopback only; each run creates
    /// its own database (`MONGODB_DB`) and drops it at the end.
    #[arg(long, env = "SUPERINSIGHTS_TEST_MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: Option<String>,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory in which each backend's fresh DATA_DIR is created (default: the system temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep each backend's DATA_DIR (database, server log) and MongoDB database.
    #[arg(long)]
    pub keep: bool,
    /// Per-request timeout; a view that takes longer fails the run.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// What the server binary was built from, for the report (default: `git describe --always
    /// --dirty` of the current directory, which is only right if the binary was built there).
    #[arg(long)]
    pub commit: Option<String>,
    /// Longest time `migrate`, `create-admin` and `seed-demo` may take, each.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub setup_timeout: Duration,
}

/// `NAME=value`.
fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("{s:?}: expected NAME=value")),
    }
}

/// Where the load goes: a loopback socket address and the `Host` header for it.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub authority: String,
}

impl Target {
    /// `http://127.0.0.1:3000` (a trailing `/` is allowed; a path is not). Loopback only.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .trim()
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(format!("{url}: give the base URL without a path"));
        }
        let addr = match authority.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                let host = authority.trim_start_matches('[').trim_end_matches(']');
                let ip: IpAddr = host.parse().map_err(|_| {
                    format!("{url}: the host must be a loopback IP address such as 127.0.0.1")
                })?;
                SocketAddr::new(ip, 80)
            }
        };
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{url}: si-load only targets loopback addresses (127.0.0.1 or ::1)"
            ));
        }
        Ok(Self::loopback(addr))
    }

    pub fn loopback(addr: SocketAddr) -> Self {
        Self {
            addr,
            authority: addr.to_string(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.authority)
    }
}

/// `250ms`, `10s`, `2m`, `1h`, `2d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "sec" | "secs" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use ms, s, m, h or d)"
            ));
        }
    };
    if !(0.0..=30.0 * 86_400.0).contains(&seconds) {
        return Err(format!("{s:?}: must be between 0 and 30 days"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration as `10s` / `1.5s` / `250ms`, for reports.
pub fn show_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn only_loopback_urls_are_accepted() {
        let t = Target::parse("http://127.0.0.1:3000/").unwrap();
        assert_eq!(t.addr.port(), 3000);
        assert_eq!(t.authority, "127.0.0.1:3000");
        assert!(Target::parse("http://[::1]:8080").is_ok());
        assert!(Target::parse("http://10.0.0.1:3000").is_err());
        assert!(Target::parse("http://example.com").is_err());
        assert!(Target::parse("https://127.0.0.1:3000").is_err());
        assert!(Target::parse("http://127.0.0.1:3000/v1").is_err());
    }
}
