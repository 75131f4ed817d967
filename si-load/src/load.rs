//! The load engine: N workers, each owning one keep-alive connection, in a closed loop (send,
//! wait for the answer, send again) or an open loop (sends on a fixed schedule, latency counted
//! from the *scheduled* send time so that a stalled server cannot hide its stalls: no coordinated
//! omission). Every latency is recorded; percentiles come from the sorted list.
//!
//! A phase is `warmup` then `duration`: requests started during the warm-up are counted only in
//! `total` (which the suite's loss check uses), never in the reported figures.

use crate::{
    args::{MAX_CONCURRENCY, MAX_DURATION, MAX_RATE, Target, show_duration},
    client::{Conn, json_count},
    payload::{Bodies, Channel, USER_AGENTS, now_ms},
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Uri,
    header::{self, HeaderValue},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::time::Instant;

/// An open-loop send may leave this much before its scheduled time: tokio's timer has a 1 ms
/// granularity and rounds deadlines up, so waking a little early keeps the timer's own delay out
/// of the measured latency (which starts at the earlier of scheduled and actual send time).
const EARLY: Duration = Duration::from_millis(1);
/// An open-loop send later than this after its scheduled time counts as a late send.
const LATE: Duration = Duration::from_millis(1);
/// Pause after a transport error before the worker tries again, so a dead server is not spun on.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// One load phase.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub target: Target,
    pub key: String,
    pub channel: Channel,
    pub batch: usize,
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Requests per second for an open loop; `None` for a closed loop.
    pub rate: Option<f64>,
    /// Age range of a batch's items when sent (the SDK flushes every 5 s).
    pub timestamp_spread: Duration,
    pub timeout: Duration,
    pub max_requests: u64,
    /// Instead of ingestion: a signed-in page or JSON route, fetched with `GET` (`si-load pages`).
    pub get: Option<GetPage>,
}

/// A `GET` of one path with a session cookie (the dashboard's data route, a page).
#[derive(Clone, Debug)]
pub struct GetPage {
    /// Path and query, e.g. `/projects/…/dashboard/data?timeframe=7d`.
    pub path: String,
    /// `sid=…`, as the sign-in returned it.
    pub cookie: String,
}

impl GetPage {
    pub fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') || self.path.parse::<Uri>().is_err() {
            return Err(format!(
                "--path must be a path such as /projects/ID/dashboard/data, not {:?}",
                self.path
            ));
        }
        HeaderValue::from_str(&self.cookie).map_err(|_| "the cookie is not a valid header")?;
        Ok(())
    }
}

impl LoadSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.key.is_empty() {
            return Err("--key must not be empty".into());
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(format!("--concurrency must be 1..={MAX_CONCURRENCY}"));
        }
        if !(1..=100).contains(&self.batch) {
            return Err("--batch must be 1..=100".into());
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err("--duration must be more than 0 and at most 10m".into());
        }
        if self.warmup > MAX_DURATION {
            return Err("--warmup must be at most 10m".into());
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(60) {
            return Err("--timeout must be more than 0 and at most 60s".into());
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE)
        {
            return Err(format!("--rate must be more than 0 and at most {MAX_RATE}"));
        }
        if self.timestamp_spread > Duration::from_secs(30 * 86_400) {
            return Err("--timestamp-spread must be at most 30 days".into());
        }
        if self.max_requests == 0 {
            return Err("--max-requests must be at least 1".into());
        }
        if let Some(get) = &self.get {
            get.validate()?;
        }
        Ok(())
    }

    /// A sentence for logs and report headers.
    pub fn describe(&self) -> String {
        let shape = match self.rate {
            Some(rate) => format!(
                "open loop at {rate} req/s over {} connections",
                self.concurrency
            ),
            None => format!("closed loop, {} connections", self.concurrency),
        };
        format!(
            "{shape}, {} {} per request, {} measured after {} warm-up, against {}",
            self.batch,
            self.channel.noun(),
            show_duration(self.duration),
            show_duration(self.warmup),
            self.target.url()
        )
    }

    /// A table label such as `batch 20, c=32` or `single, 2000 req/s open loop`.
    pub fn describe_short(&self) -> String {
        let size = if self.batch == 1 {
            "single".to_string()
        } else {
            format!("batch {}", self.batch)
        };
        match self.rate {
            Some(rate) => format!("{size}, {rate} req/s open loop (c={})", self.concurrency),
            None => format!("{size}, c={} closed loop", self.concurrency),
        }
    }
}

/// What happened to a set of requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Requests started (each ends in a status or a transport error).
    pub requests: u64,
    pub ok_2xx: u64,
    pub created_201: u64,
    pub accepted_202: u64,
    pub client_4xx: u64,
    pub server_5xx: u64,
    pub other_status: u64,
    /// Connect failures, broken connections and timeouts.
    pub transport_errors: u64,
    /// Sum of `count` over 201 answers.
    pub items_stored: u64,
    /// Sum of `spooled` over 202 answers.
    pub items_spooled: u64,
    /// Open loop only: sends more than 1 ms behind schedule (the worker was still busy).
    pub late_sends: u64,
}

impl Counters {
    /// Items the server acknowledged: stored (201) plus spooled (202).
    pub fn items_acked(&self) -> u64 {
        self.items_stored + self.items_spooled
    }

    fn record(&mut self, reply: &Reply, late: bool) {
        self.requests += 1;
        self.late_sends += late as u64;
        match reply {
            Reply::Transport(_) => self.transport_errors += 1,
            Reply::Status(code, body) => match code {
                201 => {
                    self.ok_2xx += 1;
                    self.created_201 += 1;
                    self.items_stored += json_count(body, "count").unwrap_or(0);
                }
                202 => {
                    self.ok_2xx += 1;
                    self.accepted_202 += 1;
                    self.items_spooled += json_count(body, "spooled").unwrap_or(0);
                }
                200..=299 => self.ok_2xx += 1,
                400..=499 => self.client_4xx += 1,
                500..=599 => self.server_5xx += 1,
                _ => self.other_status += 1,
            },
        }
    }

    fn add(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.ok_2xx += o.ok_2xx;
        self.created_201 += o.created_201;
        self.accepted_202 += o.accepted_202;
        self.client_4xx += o.client_4xx;
        self.server_5xx += o.server_5xx;
        self.other_status += o.other_status;
        self.transport_errors += o.transport_errors;
        self.items_stored += o.items_stored;
        self.items_spooled += o.items_spooled;
        self.late_sends += o.late_sends;
    }
}

/// A latency distribution summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Latency {
    /// From microsecond samples (sorted here).
    fn from_micros(mut samples: Vec<u32>) -> Self {
        samples.sort_unstable();
        let n = samples.len();
        if n == 0 {
            return Self::default();
        }
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            Duration::from_micros(samples[rank - 1] as u64)
        };
        let sum: u64 = samples.iter().map(|&s| s as u64).sum();
        Self {
            count: n,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(samples[n - 1] as u64),
            mean: Duration::from_micros(sum / n as u64),
        }
    }
}

/// The outcome of one phase.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Requests started after the warm-up.
    pub measured: Counters,
    /// Every request, warm-up included.
    pub total: Counters,
    /// Length of the measured window.
    pub seconds: f64,
    /// Response time of measured requests that got an HTTP answer (open loop: from the scheduled
    /// send time).
    pub latency: Latency,
    /// Open loop only: from the actual send time (what the request alone took).
    pub service: Option<Latency>,
    pub mean_body_bytes: usize,
    /// The first non-2xx answer or transport error, for diagnosis.
    pub first_error: Option<String>,
}

impl LoadResult {
    /// Items acknowledged per second in the measured window.
    pub fn items_per_sec(&self) -> f64 {
        self.measured.items_acked() as f64 / self.seconds
    }

    /// 2xx answers per second in the measured window.
    pub fn ok_per_sec(&self) -> f64 {
        self.measured.ok_2xx as f64 / self.seconds
    }

    /// Requests started per second in the measured window (the achieved rate of an open loop).
    pub fn sent_per_sec(&self) -> f64 {
        self.measured.requests as f64 / self.seconds
    }
}

enum Reply {
    Status(u16, Bytes),
    Transport(String),
}

/// Shared, read-only state of the workers of one phase.
struct Ctx {
    spec: LoadSpec,
    bodies: Bodies,
    host: HeaderValue,
    /// `Bearer <key>`, as the SDK sends it.
    key: HeaderValue,
    agents: Vec<HeaderValue>,
    t0: Instant,
    measure_from: Instant,
    end: Instant,
    issued: AtomicU64,
}

impl Ctx {
    fn request(&self, seq: usize) -> Request<Full<Bytes>> {
        if let Some(get) = &self.spec.get {
            let mut r = Request::new(Full::new(Bytes::new()));
            *r.uri_mut() = get.path.parse().expect("validated path");
            let h = r.headers_mut();
            h.insert(header::HOST, self.host.clone());
            h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            h.insert(
                header::COOKIE,
                HeaderValue::from_str(&get.cookie).expect("validated cookie"),
            );
            return r;
        }
        let mut r = Request::new(Full::new(self.bodies.body(seq, now_ms())));
        *r.method_mut() = Method::POST;
        *r.uri_mut() = Uri::from_static(self.spec.channel.path());
        let h = r.headers_mut();
        h.insert(header::HOST, self.host.clone());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::AUTHORIZATION, self.key.clone());
        h.insert(
            header::USER_AGENT,
            self.agents[seq % self.agents.len()].clone(),
        );
        r
    }
}

#[derive(Default)]
struct WorkerOut {
    measured: Counters,
    total: Counters,
    latencies: Vec<u32>,
    service: Vec<u32>,
    first_error: Option<String>,
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// Runs one phase to completion: at most `warmup + duration + timeout` long.
pub async fn run(spec: &LoadSpec) -> Result<LoadResult, String> {
    spec.validate()?;
    let bodies = Bodies::generate(
        spec.channel,
        spec.batch,
        spec.timestamp_spread,
        0x5eed ^ spec.batch as u64,
    );
    let mean_body_bytes = bodies.mean_len();
    let host = HeaderValue::from_str(&spec.target.authority).map_err(|e| e.to_string())?;
    let key = HeaderValue::from_str(&format!("Bearer {}", spec.key))
        .map_err(|_| "the key is not a valid header value")?;
    let agents = USER_AGENTS
        .iter()
        .map(|a| HeaderValue::from_static(a))
        .collect();

    // Connections are opened before the clock starts; a server that refuses the first one is
    // not there at all.
    let mut conns = Vec::with_capacity(spec.concurrency);
    for i in 0..spec.concurrency {
        match tokio::time::timeout(spec.timeout, Conn::open(spec.target.addr)).await {
            Ok(Ok(c)) => conns.push(Some(c)),
            Ok(Err(e)) if i == 0 => return Err(e),
            Err(_) if i == 0 => return Err(format!("connect {}: timed out", spec.target.addr)),
            _ => conns.push(None),
        }
    }

    let t0 = Instant::now() + Duration::from_millis(20);
    let ctx = Arc::new(Ctx {
        spec: spec.clone(),
        bodies,
        host,
        key,
        agents,
        t0,
        measure_from: t0 + spec.warmup,
        end: t0 + spec.warmup + spec.duration,
        issued: AtomicU64::new(0),
    });
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(id, conn)| tokio::spawn(worker(id, conn, ctx.clone())))
        .collect();

    let mut measured = Counters::default();
    let mut total = Counters::default();
    let mut latencies = Vec::new();
    let mut service = Vec::new();
    let mut first_error = None;
    for w in workers {
        let out = w.await.map_err(|e| format!("worker failed: {e}"))?;
        measured.add(&out.measured);
        total.add(&out.total);
        latencies.extend(out.latencies);
        service.extend(out.service);
        first_error = first_error.or(out.first_error);
    }
    Ok(LoadResult {
        measured,
        total,
        seconds: spec.duration.as_secs_f64(),
        latency: Latency::from_micros(latencies),
        service: spec.rate.map(|_| Latency::from_micros(service)),
        mean_body_bytes,
        first_error,
    })
}

async fn worker(id: usize, conn: Option<Conn>, ctx: Arc<Ctx>) -> WorkerOut {
    let mut conn = conn;
    let mut out = WorkerOut::default();
    let n = ctx.spec.concurrency;
    tokio::time::sleep_until(ctx.t0).await;
    for k in 0usize.. {
        // Worker `id` owns sequence numbers id, id+n, id+2n…: in an open loop, sequence s is due
        // at t0 + s/rate, so together the workers send at exactly the rate.
        let seq = id + k * n;
        let scheduled = ctx
            .spec
            .rate
            .map(|rate| ctx.t0 + Duration::from_secs_f64(seq as f64 / rate));
        let measured = match scheduled {
            None => {
                let now = Instant::now();
                if now >= ctx.end {
                    break;
                }
                now >= ctx.measure_from
            }
            Some(at) => {
                if at >= ctx.end {
                    break;
                }
                if at > Instant::now() + EARLY {
                    tokio::time::sleep_until(at - EARLY).await;
                }
                at >= ctx.measure_from
            }
        };
        if ctx.issued.fetch_add(1, Ordering::Relaxed) >= ctx.spec.max_requests {
            break;
        }
        let request = ctx.request(seq);
        let sent = Instant::now();
        let reply = exchange(&mut conn, &ctx, request).await;
        let done = Instant::now();
        let start = scheduled.map_or(sent, |at| at.min(sent));
        let late = scheduled.is_some_and(|at| sent > at + LATE);

        out.total.record(&reply, late);
        if measured {
            out.measured.record(&reply, late);
            if let Reply::Status(..) = reply {
                out.latencies.push(micros(done - start));
                if scheduled.is_some() {
                    out.service.push(micros(done - sent));
                }
            }
        }
        match &reply {
            Reply::Status(code, _) if (200..300).contains(code) => {}
            Reply::Status(code, body) => {
                out.first_error.get_or_insert_with(|| {
                    format!("HTTP {code}: {}", String::from_utf8_lossy(body))
                });
            }
            Reply::Transport(e) => {
                out.first_error
                    .get_or_insert_with(|| format!("transport: {e}"));
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    out
}

/// One request on the worker's connection, (re)connecting first when it has none.
async fn exchange(conn: &mut Option<Conn>, ctx: &Ctx, request: Request<Full<Bytes>>) -> Reply {
    let attempt = async {
        if conn.is_none() {
            *conn = Some(Conn::open(ctx.spec.target.addr).await?);
        }
        match conn.as_mut() {
            Some(c) => c.send(request).await,
            None => Err("no connection".to_string()),
        }
    };
    let result = tokio::time::timeout(ctx.spec.timeout, attempt).await;
    match result {
        Ok(Ok((status, body))) => Reply::Status(status, body),
        Ok(Err(e)) => {
            *conn = None;
            Reply::Transport(e)
        }
        Err(_) => {
            *conn = None;
            Reply::Transport(format!("timed out after {:?}", ctx.spec.timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let l = Latency::from_micros((1..=1000).rev().collect());
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50, Duration::from_micros(500));
        assert_eq!(l.p99, Duration::from_micros(990));
        assert_eq!(l.max, Duration::from_micros(1000));
        assert_eq!(Latency::from_micros(vec![]).count, 0);
    }

    fn page_spec(path: &str) -> LoadSpec {
        LoadSpec {
            target: Target::loopback("127.0.0.1:3000".parse().unwrap()),
            key: "-".into(),
            channel: Channel::Events,
            batch: 1,
            concurrency: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            rate: None,
            timestamp_spread: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            max_requests: 10,
            get: Some(GetPage {
                path: path.into(),
                cookie: "sid=abc".into(),
            }),
        }
    }

    #[test]
    fn a_page_spec_sends_a_signed_in_get_without_a_body_or_key() {
        let spec = page_spec("/projects/p1/dashboard/data?timeframe=7d");
        spec.validate().unwrap();
        let now = Instant::now();
        let ctx = Ctx {
            bodies: Bodies::generate(Channel::Events, 1, Duration::from_secs(5), 1),
            host: HeaderValue::from_static("127.0.0.1:3000"),
            key: HeaderValue::from_static("Bearer -"),
            agents: vec![HeaderValue::from_static("a")],
            t0: now,
            measure_from: now,
            end: now,
            issued: AtomicU64::new(0),
            spec,
        };
        let r = ctx.request(3);
        assert_eq!(r.method(), Method::GET);
        assert_eq!(
            r.uri().to_string(),
            "/projects/p1/dashboard/data?timeframe=7d"
        );
        assert_eq!(r.headers()[header::COOKIE], "sid=abc");
        assert!(r.headers().get(header::AUTHORIZATION).is_none());
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
        // Ingestion specs are untouched: a POST with the key.
        let mut ingest = ctx.spec.clone();
        ingest.get = None;
        let ctx = Ctx {
            spec: ingest,
            ..ctx
        };
        let r = ctx.request(0);
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.headers()[header::AUTHORIZATION], "Bearer -");
    }

    #[test]
    fn a_page_spec_needs_a_path() {
        assert!(page_spec("dashboard/data").validate().is_err());
        assert!(page_spec("http://127.0.0.1/x").validate().is_err());
        assert!(page_spec("/ok").validate().is_ok());
    }
}
