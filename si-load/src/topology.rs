//! `si-load topologies`: the cost per request of each Redis topology on the paths that use
//! Redis, through the real server binary over loopback HTTP. For every variant — no Redis, one
//! server, one server with the Redis Streams ingest buffer, Sentinel (a primary, a replica, three
//! sentinels) and Cluster (three primaries with a replica each), those two with the buffer on —
//! it starts the Redis processes privately on loopback ports, a fresh server with every Redis
//! piece on, and runs `redis-compare`'s measurements: a signed-in request (session load), cached
//! dashboard views (cache hits), single events on an open loop (two rate-limit checks, plus the
//! buffer's add when on) and batches on a closed loop. Variants run in rounds (A, B, C, A, B, C…)
//! so that the machine's other load falls on each alike; the report gives every round and the
//! medians. Bounded like `redis-compare`; every process is killed when its variant ends.

use crate::{
    redis_compare::{CompareArgs, Figures, Server, Stat, measure, redis_env},
    report::{ms, thousands},
    suite::{free_port, now_utc},
};
use clap::Args;
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::{
    process::{Child, Command},
    time::Instant,
};

/// Sentinel's name for the primary it watches.
const SERVICE: &str = "si-primary";
/// Bound on each `redis-cli` call and on each wait for a topology to form.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct TopologyArgs {
    #[command(flatten)]
    pub compare: CompareArgs,
    /// Variants to run, comma-separated: off, single, single+buffer, sentinel+buffer,
    /// cluster+buffer.
    #[arg(
        long,
        default_value = "off,single,single+buffer,sentinel+buffer,cluster+buffer"
    )]
    pub variants: String,
    /// Rounds: each runs every variant once, in order.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub rounds: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Single,
    Sentinel,
    Cluster,
}

/// One configuration measured: a Redis shape (or none) and whether the ingest buffer is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub shape: Option<Shape>,
    pub buffer: bool,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match (self.shape, self.buffer) {
            (None, _) => "off",
            (Some(Shape::Single), false) => "single",
            (Some(Shape::Single), true) => "single+buffer",
            (Some(Shape::Sentinel), false) => "sentinel",
            (Some(Shape::Sentinel), true) => "sentinel+buffer",
            (Some(Shape::Cluster), false) => "cluster",
            (Some(Shape::Cluster), true) => "cluster+buffer",
        }
    }
}

/// `off,single,…` → the variants, in order; an unknown or repeated name is an error.
pub fn parse_variants(list: &str) -> Result<Vec<Variant>, String> {
    let mut out: Vec<Variant> = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let (shape, buffer) = match word.split_once('+') {
            Some((shape, "buffer")) => (shape, true),
            Some(_) => {
                return Err(format!(
                    "--variants: unknown suffix in {word:?} (only +buffer)"
                ));
            }
            None => (word, false),
        };
        let shape = match shape {
            "off" if !buffer => None,
            "single" => Some(Shape::Single),
            "sentinel" => Some(Shape::Sentinel),
            "cluster" => Some(Shape::Cluster),
            _ => {
                return Err(format!(
                    "--variants: unknown variant {word:?} (off, single, sentinel, cluster, each but off with an optional +buffer)"
                ));
            }
        };
        let v = Variant { shape, buffer };
        if out.contains(&v) {
            return Err(format!("--variants: {word} named twice"));
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err("--variants: name at least one".into());
    }
    Ok(out)
}

/// The Redis processes of one topology and the `REDIS_URL` that reaches them.
struct Topology {
    children: Vec<Child>,
    url: String,
    dir: PathBuf,
}

impl Topology {
    async fn start(shape: Shape, binary: &str) -> Result<Self, String> {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir =
            std::env::temp_dir().join(format!("si-load-topology-{}-{stamp:x}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut t = Self {
            children: Vec::new(),
            url: String::new(),
            dir,
        };
        match shape {
            Shape::Single => {
                let port = t.server(binary, &[]).await?;
                t.url = format!("redis://127.0.0.1:{port}");
            }
            Shape::Sentinel => {
                let primary = t.server(binary, &[]).await?;
                let of = primary.to_string();
                let replica = t.server(binary, &["--replicaof", "127.0.0.1", &of]).await?;
                let mut sentinels = Vec::new();
                for _ in 0..3 {
                    sentinels.push(t.sentinel(binary, primary).await?);
                }
                wait_for(&format!("replica {replica} in sync"), async || {
                    redis_cli(replica, &["INFO", "replication"])
                        .await
                        .contains("master_link_status:up")
                })
                .await?;
                t.url = sentinel_url(&sentinels);
            }
            Shape::Cluster => {
                let mut ports = Vec::new();
                for _ in 0..6 {
                    let bus = free_port()?.to_string();
                    let file = format!("nodes-{bus}.conf");
                    ports.push(
                        t.server(
                            binary,
                            &[
                                "--cluster-enabled",
                                "yes",
                                "--cluster-port",
                                &bus,
                                "--cluster-config-file",
                                &file,
                                "--cluster-node-timeout",
                                "5000",
                            ],
                        )
                        .await?,
                    );
                }
                let mut args = vec!["--cluster".to_string(), "create".to_string()];
                args.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
                args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = redis_cli(ports[0], &args).await;
                if !out.contains("[OK]") {
                    return Err(format!("redis-cli --cluster create:\n{out}"));
                }
                wait_for("every cluster node ok", async || {
                    for p in &ports {
                        if !redis_cli(*p, &["CLUSTER", "INFO"])
                            .await
                            .contains("cluster_state:ok")
                        {
                            return false;
                        }
                    }
                    true
                })
                .await?;
                t.url = cluster_url(&ports);
            }
        }
        Ok(t)
    }

    /// A redis-server on a free loopback port, persistence off; returns its port.
    async fn server(&mut self, binary: &str, extra: &[&str]) -> Result<u16, String> {
        let port = free_port()?;
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        self.children.push(child);
        wait_for(&format!("redis on {port}"), async || {
            redis_cli(port, &["PING"]).await.contains("PONG")
        })
        .await?;
        Ok(port)
    }

    /// A sentinel watching `primary` (quorum 2); returns its port.
    async fn sentinel(&mut self, binary: &str, primary: u16) -> Result<u16, String> {
        let port = free_port()?;
        let conf = self.dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(&conf, sentinel_conf(port, primary, &self.dir))
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        let child = Command::new(binary)
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a sentinel: {e}"))?;
        self.children.push(child);
        wait_for(&format!("sentinel on {port}"), async || {
            redis_cli(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE])
                .await
                .contains(&primary.to_string())
        })
        .await?;
        Ok(port)
    }

    async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sentinel_conf(port: u16, primary: u16, dir: &Path) -> String {
    format!(
        "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {SERVICE} 127.0.0.1 {primary} 2\nsentinel down-after-milliseconds {SERVICE} 5000\n",
        dir.display()
    )
}

/// fred's grammar: the first sentinel as the host, the others as `node=`.
fn sentinel_url(sentinels: &[u16]) -> String {
    let nodes: String = sentinels[1..]
        .iter()
        .map(|p| format!("&node=127.0.0.1:{p}"))
        .collect();
    format!(
        "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName={SERVICE}{nodes}",
        sentinels[0]
    )
}

fn cluster_url(nodes: &[u16]) -> String {
    let seeds: Vec<String> = nodes[1..3]
        .iter()
        .map(|p| format!("node=127.0.0.1:{p}"))
        .collect();
    format!("redis-cluster://127.0.0.1:{}?{}", nodes[0], seeds.join("&"))
}

/// `redis-cli -p port args…`, its output (empty when it failed or took too long).
async fn redis_cli(port: u16, args: &[&str]) -> String {
    let run = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(SETUP_TIMEOUT, run).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while !check().await {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {SETUP_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One variant, measured once.
async fn one(a: &TopologyArgs, v: Variant) -> Result<Figures, String> {
    let topology = match v.shape {
        Some(shape) => Some(Topology::start(shape, &a.compare.redis_server).await?),
        None => None,
    };
    let mut env = topology
        .as_ref()
        .map(|t| redis_env(&t.url))
        .unwrap_or_default();
    if v.buffer {
        env.push(("INGEST_BUFFER_REDIS".into(), "true".into()));
    }
    let figures = match Server::start(&a.compare, v.name(), &env).await {
        Ok(server) => {
            let f = measure(&a.compare, &server).await;
            server.stop().await;
            f
        }
        Err(e) => Err(e),
    };
    if let Some(t) = topology {
        t.stop().await;
    }
    figures
}

pub async fn run(a: TopologyArgs) -> Result<(), String> {
    let variants = parse_variants(&a.variants)?;
    let started = Instant::now();
    let mut rows: Vec<(u32, Variant, Figures, Option<f64>)> = Vec::new();
    for round in 1..=a.rounds {
        for &v in &variants {
            let load = crate::probe::load_average();
            eprintln!("si-load topologies: round {round}, {}", v.name());
            let f = one(&a, v).await?;
            rows.push((round, v, f, load));
        }
    }
    let markdown = report(&a, &variants, &rows, started.elapsed());
    println!("{markdown}");
    if let Some(out) = &a.compare.out {
        std::fs::write(out, &markdown).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

fn lat(r: &crate::load::LoadResult) -> Stat {
    Stat {
        n: r.latency.count,
        errors: 0,
        p50: r.latency.p50,
        p99: r.latency.p99,
        max: r.latency.max,
    }
}

/// Reads one figure out of a variant's measurements.
type Pick<'a> = &'a dyn Fn(&Figures) -> f64;

/// The median of `values` (the lower middle one for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

fn report(
    a: &TopologyArgs,
    variants: &[Variant],
    rows: &[(u32, Variant, Figures, Option<f64>)],
    took: Duration,
) -> String {
    let command: Vec<String> = std::iter::once("si-load".to_string())
        .chain(std::env::args().skip(1))
        .collect();
    let mut s = format!(
        "`{}` — {}, whole run {:.0} s\n\n",
        command.join(" "),
        now_utc(),
        took.as_secs_f64()
    );
    s += &format!(
        "| round | variant | load avg | session request p50 / p99 | cached dashboard p50 / p99 | single event, {} req/s open loop, p50 / p99 | batches of 20, 16 conn: events/s (p50 / p99) | failed |\n|---:|---|---:|---:|---:|---:|---:|---:|\n",
        a.compare.rate
    );
    for (round, v, f, load) in rows {
        let failed = f.session.errors
            + f.uncached.errors
            + (f.single.measured.requests - f.single.measured.ok_2xx) as usize
            + (f.batch.measured.requests - f.batch.measured.ok_2xx) as usize;
        s += &format!(
            "| {round} | {} | {} | {} | {} | {} | {} ({} / {}) | {failed} |\n",
            v.name(),
            load.map_or("?".into(), |l| format!("{l:.2}")),
            f.session.p50_p99(),
            f.cached.p50_p99(),
            lat(&f.single).p50_p99(),
            thousands(f.batch.items_per_sec() as u64),
            ms(f.batch.latency.p50),
            ms(f.batch.latency.p99),
        );
    }
    // Medians over the rounds, and each against `off` (the first variant's baseline if absent).
    let med = |v: Variant, pick: &dyn Fn(&Figures) -> f64| {
        median(
            rows.iter()
                .filter(|r| r.1 == v)
                .map(|r| pick(&r.2))
                .collect(),
        )
    };
    let base = variants
        .iter()
        .copied()
        .find(|v| v.shape.is_none())
        .unwrap_or(variants[0]);
    let picks: [(&str, Pick); 4] = [
        ("session p50 ms", &|f| f.session.p50.as_secs_f64() * 1e3),
        ("cached dashboard p50 ms", &|f| {
            f.cached.p50.as_secs_f64() * 1e3
        }),
        ("single event p50 ms", &|f| {
            f.single.latency.p50.as_secs_f64() * 1e3
        }),
        ("batch events/s", &|f| f.batch.items_per_sec()),
    ];
    s += &format!(
        "\nMedians over {} round(s), and the ratio to `{}`:\n\n| variant |",
        a.rounds,
        base.name()
    );
    for (name, _) in &picks {
        s += &format!(" {name} |");
    }
    s += "\n|---|";
    s += &"---:|".repeat(picks.len());
    s += "\n";
    for &v in variants {
        s += &format!("| {} |", v.name());
        for (_, pick) in &picks {
            let (x, b) = (med(v, *pick), med(base, *pick));
            let ratio = if b > 0.0 {
                format!("{:.2}×", x / b)
            } else {
                "–".into()
            };
            s += &format!(" {x:.2} ({ratio}) |");
        }
        s += "\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_in_order_and_refuse_unknown_names() {
        let v = parse_variants("off, single,single+buffer,cluster+buffer").unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name()).collect();
        assert_eq!(names, ["off", "single", "single+buffer", "cluster+buffer"]);
        assert_eq!(
            parse_variants("sentinel").unwrap()[0],
            Variant {
                shape: Some(Shape::Sentinel),
                buffer: false
            }
        );
        for bad in ["", "mongo", "off+buffer", "single+cache", "single,single"] {
            assert!(parse_variants(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_follow_freds_grammar_on_loopback() {
        assert_eq!(
            sentinel_url(&[1, 2, 3]),
            "redis-sentinel://127.0.0.1:1/0?sentinelServiceName=si-primary&node=127.0.0.1:2&node=127.0.0.1:3"
        );
        assert_eq!(
            cluster_url(&[1, 2, 3, 4, 5, 6]),
            "redis-cluster://127.0.0.1:1?node=127.0.0.1:2&node=127.0.0.1:3"
        );
        let conf = sentinel_conf(7, 6, Path::new("/tmp/x"));
        assert!(conf.contains("bind 127.0.0.1\n"));
        assert!(conf.contains("sentinel monitor si-primary 127.0.0.1 6 2\n"));
    }

    #[test]
    fn median_takes_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 1.0);
        assert_eq!(median(vec![]), 0.0);
    }
}
