//! `si-load views`: every analytics view through the real server binary over loopback HTTP,
//! uncached and cached, unfiltered and filtered (issue 12). Per backend: a fresh `DATA_DIR` (and,
//! for MongoDB, a fresh database), `superinsights migrate`, `create-admin`, `seed-demo`, then
//! `superinsights serve` on a free 127.0.0.1 port; it signs in through the login form (cookie and
//! CSRF token, as a browser does) and times each view's HTML page and JSON form.
//!
//! Uncached means the server's `DashboardCache` misses: before each uncached sample the project's
//! drop rules are saved unchanged through the settings form, which bumps the project's cache
//! generation (the same invalidation a real settings change does) and touches no analytics data.
//! Cached means the same request again at once. Every sample is checked against the server's own
//! `si_cache_requests_total` counters on `/metrics`, read just before and just after it: an
//! uncached sample must count a miss and no hit, a cached one a hit and no miss. A cached sample
//! that misses (its time bucket ended in between) is taken again; anything else fails the run.
//!
//! Bounded: loopback only (the server, and the MongoDB URI), a timeout on every request and on
//! every setup command, every child killed when the run ends, on error, or on SIGINT/SIGTERM.

use crate::{
    args::{Backend, Target, ViewsArgs, show_duration},
    client::Conn,
    probe::{Machine, load_average},
    redis_compare::{EMAIL, HUGE, PASSWORD, cli, form_encode, parse_project, sign_in},
    report::{ms, thousands},
    suite::{now_utc, start_server, terminate},
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, header};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::{process::Child, time::Instant};

/// What a browser sends for a page.
const ACCEPT_HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
/// What the `si` CLI sends: the views answer JSON to clients that accept only JSON.
const ACCEPT_JSON: &str = "application/json";
/// Attempts at one clean sample (a cached sample can straddle the end of a cache bucket).
const ATTEMPTS: usize = 4;
const TIMEFRAMES: [&str; 10] = [
    "5m", "30m", "1h", "6h", "12h", "24h", "7d", "30d", "3m", "1y",
];

impl ViewsArgs {
    fn validate(&self) -> Result<(), String> {
        if !self.binary.is_file() {
            return Err(format!(
                "{}: no such server binary (cargo build --release --bin superinsights)",
                self.binary.display()
            ));
        }
        if !TIMEFRAMES.contains(&self.timeframe.as_str()) {
            return Err(format!(
                "--timeframe {}: use one of {}",
                self.timeframe,
                TIMEFRAMES.join(", ")
            ));
        }
        if self.backends.is_empty() {
            return Err("--backends: name at least one backend".into());
        }
        for (name, d, cap) in [
            ("--timeout", self.timeout, Duration::from_secs(600)),
            (
                "--setup-timeout",
                self.setup_timeout,
                Duration::from_secs(6 * 3600),
            ),
        ] {
            if d.is_zero() || d > cap {
                return Err(format!(
                    "{name} must be more than 0 and at most {}",
                    show_duration(cap)
                ));
            }
        }
        if self.backends.contains(&Backend::Mongodb) {
            let uri = self.mongodb_uri.as_deref().ok_or(
                "the mongodb backend needs --mongodb-uri (or SUPERINSIGHTS_TEST_MONGODB_URI)",
            )?;
            crate::mongo::uri_is_loopback(uri)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// What is measured.

/// One request to time: a view, its HTML or JSON form, and a filter set.
#[derive(Clone, Debug)]
struct Case {
    /// `dashboard`, `page views`, …
    view: &'static str,
    /// The route as the router spells it, with `Accept` for the JSON forms.
    request: String,
    json: bool,
    /// Query parameters besides the timeframe, form-encoded (`""` for none).
    filters: String,
    /// 0, 1 or 2 filters.
    level: usize,
    /// Path and query of the request.
    path: String,
    /// Where the JSON form's headline count sits.
    figure: Figure,
}

#[derive(Clone, Copy, Debug)]
enum Figure {
    /// A number at a JSON pointer.
    At(&'static str),
    /// The sum of `count` over an array of `{date, count}` at a JSON pointer.
    SumOf(&'static str),
}

impl Figure {
    fn read(self, body: &[u8]) -> Option<u64> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        match self {
            Figure::At(p) => v.pointer(p)?.as_u64(),
            Figure::SumOf(p) => Some(
                v.pointer(p)?
                    .as_array()?
                    .iter()
                    .filter_map(|d| d.get("count")?.as_u64())
                    .sum(),
            ),
        }
    }
}

/// Query parameters of one filter set.
type Filters = &'static [(&'static str, &'static str)];

/// The demo data's values (`services::demo`): browsers Chrome/Safari/Firefox/Edge on page views,
/// errors and vitals; devices on page views (web vitals are all `desktop`); events carry
/// `properties.plan` (free/pro/team); visitors are `v0`, `v1`, … with `v0` the most frequent.
/// Page views also take a URL prefix alone (a third set: one filter that scans).
const PAGEVIEW_FILTERS: &[Filters] = &[
    &[("browser", "Chrome")],
    &[("browser", "Chrome"), ("deviceType", "mobile")],
    &[("urlPrefix", "https://demo.example/page/1")],
];
const EVENT_FILTERS: &[Filters] = &[
    &[("metaKey", "plan"), ("metaValue", "pro")],
    &[
        ("metaKey", "plan"),
        ("metaValue", "pro"),
        ("clientId", "v0"),
    ],
];
const ERROR_FILTERS: &[Filters] = &[
    &[("browser", "Chrome")],
    &[("browser", "Chrome"), ("clientId", "v0")],
];
const PERFORMANCE_FILTERS: &[Filters] = &[
    &[("browser", "Chrome")],
    &[("browser", "Chrome"), ("deviceType", "desktop")],
];

/// Percent-encodes one path segment.
fn path_segment(s: &str) -> String {
    form_encode(s)
}

fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Every view, in both forms where it has two, unfiltered and with one and two filters where it
/// takes filters (page views also with a URL prefix alone).
fn cases(project: &str, timeframe: &str, event_name: &str, fingerprint: &str) -> Vec<Case> {
    struct View {
        name: &'static str,
        route: String,
        path: String,
        forms: &'static [bool],
        filters: Option<&'static [Filters]>,
        figure: Figure,
    }
    let base = format!("/projects/{project}");
    let view = |name: &'static str,
                route: &str,
                path: String,
                forms: &'static [bool],
                filters: Option<&'static [Filters]>,
                figure: Figure| View {
        name,
        route: route.to_string(),
        path,
        forms,
        filters,
        figure,
    };
    let views = [
        view(
            "dashboard",
            "/dashboard",
            format!("{base}/dashboard"),
            &[false],
            None,
            Figure::At("/data/pageViews/totalViews"),
        ),
        view(
            "dashboard",
            "/dashboard/data",
            format!("{base}/dashboard/data"),
            &[true],
            Some(PAGEVIEW_FILTERS),
            Figure::At("/data/pageViews/totalViews"),
        ),
        view(
            "page views",
            "/pageviews",
            format!("{base}/pageviews"),
            &[false, true],
            Some(PAGEVIEW_FILTERS),
            Figure::At("/totalViews"),
        ),
        view(
            "events",
            "/events",
            format!("{base}/events"),
            &[false, true],
            Some(EVENT_FILTERS),
            Figure::At("/totalEvents"),
        ),
        view(
            "events live",
            "/events/live.json",
            format!("{base}/events/live.json"),
            &[true],
            Some(EVENT_FILTERS),
            Figure::At("/recentPagination/total"),
        ),
        view(
            "event detail",
            "/events/{name}",
            format!("{base}/events/{}", path_segment(event_name)),
            &[false, true],
            Some(EVENT_FILTERS),
            Figure::SumOf("/eventsByDay"),
        ),
        view(
            "errors",
            "/errors",
            format!("{base}/errors"),
            &[false, true],
            Some(ERROR_FILTERS),
            Figure::At("/totalErrors"),
        ),
        view(
            "error detail",
            "/errors/{fingerprint}",
            format!("{base}/errors/{}", path_segment(fingerprint)),
            &[false, true],
            None,
            Figure::At("/totalOccurrences"),
        ),
        view(
            "performance",
            "/performance",
            format!("{base}/performance"),
            &[false, true],
            Some(PERFORMANCE_FILTERS),
            Figure::At("/totalMeasurements"),
        ),
    ];
    let mut out = Vec::new();
    for level in 0..4 {
        for v in &views {
            let filters: &[(&str, &str)] = match (level, v.filters) {
                (0, _) => &[],
                (l, Some(sets)) => match sets.get(l - 1) {
                    Some(set) => set,
                    None => continue,
                },
                (_, None) => continue,
            };
            let mut pairs = vec![("timeframe", timeframe)];
            pairs.extend_from_slice(filters);
            for &json in v.forms {
                out.push(Case {
                    view: v.name,
                    request: if json && !v.route.ends_with(".json") && v.route != "/dashboard/data"
                    {
                        format!("{} (JSON)", v.route)
                    } else {
                        v.route.clone()
                    },
                    json,
                    filters: encode_pairs(filters),
                    level,
                    path: format!("{}?{}", v.path, encode_pairs(&pairs)),
                    figure: v.figure,
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// One server per backend.

struct Server {
    child: Child,
    pid: u32,
    target: Target,
    log: PathBuf,
    cookie: String,
    csrf: String,
    project: String,
    conn: Option<Conn>,
    timeout: Duration,
}

/// How the server's cache counted one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cache {
    Miss,
    Hit,
    /// Neither: the view never goes through the cache (`events/live.json`).
    Bypass,
}

impl Server {
    async fn start(
        a: &ViewsArgs,
        env: &[(String, String)],
        log: PathBuf,
        project: String,
    ) -> Result<Self, String> {
        let (child, pid, target) = start_server(&a.binary, env.iter().cloned(), &log).await?;
        let (cookie, csrf) = sign_in(&target, EMAIL, PASSWORD).await?;
        Ok(Self {
            child,
            pid,
            target,
            log,
            cookie,
            csrf,
            project,
            conn: None,
            timeout: a.timeout,
        })
    }

    /// SIGTERM, then SIGKILL if it has not exited within 30 s.
    async fn stop(mut self) {
        let _ = terminate(self.pid).await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    /// The last lines of the server log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("\nserver log ({}):\n{tail}", self.log.display())
        }
    }

    /// One request on the kept-alive connection: `(time to the whole body, status, body)`.
    /// A transport error or a timeout is an error; the connection is then dropped.
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        what: &str,
    ) -> Result<(Duration, u16, Bytes), String> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(self.target.addr).await?);
        }
        let conn = self.conn.as_mut().expect("connection just opened");
        let t = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, conn.send(request)).await;
        let took = t.elapsed();
        match outcome {
            Ok(Ok((status, body))) => Ok((took, status, body)),
            Ok(Err(e)) => {
                self.conn = None;
                Err(format!("{what}: {e}{}", self.log_tail()))
            }
            Err(_) => {
                self.conn = None;
                Err(format!(
                    "{what}: no answer within {}{}",
                    show_duration(self.timeout),
                    self.log_tail()
                ))
            }
        }
    }

    fn get(&self, path: &str, accept: &str) -> Request<Full<Bytes>> {
        Request::get(path)
            .header(header::HOST, &self.target.authority)
            .header(header::ACCEPT, accept)
            .header(header::COOKIE, &self.cookie)
            .body(Full::new(Bytes::new()))
            .expect("valid request")
    }

    /// `GET path`, which must answer 200.
    async fn get_ok(&mut self, path: &str, json: bool) -> Result<(Duration, Bytes), String> {
        let accept = if json { ACCEPT_JSON } else { ACCEPT_HTML };
        let request = self.get(path, accept);
        let what = format!("GET {path} ({accept})");
        let (took, status, body) = self.send(request, &what).await?;
        if status != 200 {
            let excerpt: String = String::from_utf8_lossy(&body).chars().take(400).collect();
            return Err(format!(
                "{what} answered {status} after {}, expected 200: {excerpt}{}",
                ms(took),
                self.log_tail()
            ));
        }
        let well_formed = if json {
            serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok()
        } else {
            body.windows(5).any(|w| w.eq_ignore_ascii_case(b"<html"))
        };
        if !well_formed {
            return Err(format!(
                "{what} answered 200 but not with {}",
                if json { "JSON" } else { "an HTML page" }
            ));
        }
        Ok((took, body))
    }

    /// Saves the project's drop rules unchanged (off, no filters) through the settings form: the
    /// server bumps the project's cache generation, so its next views miss the cache.
    async fn invalidate(&mut self) -> Result<(), String> {
        let path = format!("/projects/{}/settings/drop-events", self.project);
        let form = format!("_csrf={}&dropMode=blacklist", form_encode(&self.csrf));
        let request = Request::post(path.as_str())
            .header(header::HOST, &self.target.authority)
            .header(header::ACCEPT, ACCEPT_HTML)
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .expect("valid request");
        let what = format!("POST {path}");
        let (_, status, _) = self.send(request, &what).await?;
        if status != 200 {
            return Err(format!("{what} answered {status}, expected 200"));
        }
        Ok(())
    }

    /// `(hits, misses)` of the server's view cache so far, all views together.
    async fn cache_counters(&mut self) -> Result<(u64, u64), String> {
        let request = Request::get("/metrics")
            .header(header::HOST, &self.target.authority)
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        let (_, status, body) = self.send(request, "GET /metrics").await?;
        if status != 200 {
            return Err(format!(
                "GET /metrics answered {status}: cannot tell cache hits from misses"
            ));
        }
        Ok(cache_counts(&String::from_utf8_lossy(&body)))
    }

    /// One sample of `case`: uncached (invalidate first) or cached (repeat at once), checked
    /// against the server's cache counters.
    async fn sample(
        &mut self,
        case: &Case,
        uncached: bool,
        redone: &mut usize,
    ) -> Result<(Duration, Cache, Bytes), String> {
        let mut last = (0, 0);
        for _ in 0..ATTEMPTS {
            if uncached {
                self.invalidate().await?;
            }
            let before = self.cache_counters().await?;
            let (took, body) = self.get_ok(&case.path, case.json).await?;
            let after = self.cache_counters().await?;
            let (hits, misses) = (after.0 - before.0, after.1 - before.1);
            last = (hits, misses);
            let cache = match (hits, misses) {
                (0, 0) => Cache::Bypass,
                (0, _) => Cache::Miss,
                (_, 0) => Cache::Hit,
                _ => {
                    *redone += 1;
                    continue;
                }
            };
            let clean = match cache {
                Cache::Bypass => true,
                Cache::Miss => uncached,
                Cache::Hit => !uncached,
            };
            if clean {
                return Ok((took, cache, body));
            }
            *redone += 1;
        }
        Err(format!(
            "GET {}: no {} sample in {ATTEMPTS} attempts (last: {} hits, {} misses on /metrics)",
            case.path,
            if uncached { "uncached" } else { "cached" },
            last.0,
            last.1
        ))
    }
}

/// Sums `si_cache_requests_total` by result: `(hits, misses)`.
fn cache_counts(metrics: &str) -> (u64, u64) {
    let (mut hits, mut misses) = (0.0, 0.0);
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("si_cache_requests_total") else {
            continue;
        };
        let Some((series, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        if series.contains("result=\"hit\"") {
            hits += v;
        } else if series.contains("result=\"miss\"") {
            misses += v;
        }
    }
    (hits as u64, misses as u64)
}

// ---------------------------------------------------------------------------------------------
// Setup and one backend's run.

fn server_env(backend: Backend, dir: &Path, mongo: Option<(&str, &str)>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("DATA_DIR", dir.display().to_string()),
        ("ENV_FILE", "/nonexistent".into()),
        ("RUST_LOG", "warn".into()),
        ("NO_COLOR", "1".into()),
        ("RATE_LIMIT_AUTH_IP", HUGE.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Ok(path) = std::env::var("PATH") {
        env.push(("PATH".into(), path));
    }
    if let (Backend::Mongodb, Some((uri, db))) = (backend, mongo) {
        env.push(("MONGODB_URI".into(), uri.to_string()));
        env.push(("MONGODB_DB".into(), db.to_string()));
    }
    env
}

/// The figures of one case on one backend.
struct Row {
    case: Case,
    backend: Backend,
    uncached: Vec<Duration>,
    /// Empty when the view bypasses the cache.
    cached: Vec<Duration>,
    bypass: bool,
    /// The headline count of the JSON form of this view and filter set.
    figure: Option<u64>,
}

struct BackendRun {
    backend: Backend,
    seeded: String,
    setup: String,
    rows: Vec<Row>,
    misses: usize,
    hits: usize,
    redone: usize,
}

async fn run_backend(a: &ViewsArgs, backend: Backend) -> Result<BackendRun, String> {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let parent = a.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!(
        "si-load-views-{}-{}-{stamp:x}",
        backend.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let database = format!("si_load_views_{}_{stamp:x}", std::process::id());
    let uri = a.mongodb_uri.clone().unwrap_or_default();
    let mongo = (backend == Backend::Mongodb).then_some((uri.as_str(), database.as_str()));
    let env = server_env(backend, &dir, mongo);
    let result = run_in(a, backend, &dir, &env).await;
    if a.keep || result.is_err() {
        eprintln!(
            "si-load views: {} data and server log kept in {}",
            backend.name(),
            dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some((uri, db)) = mongo {
        if a.keep {
            eprintln!("si-load views: MongoDB database {db} kept");
        } else {
            crate::mongo::drop_database(uri, db).await;
        }
    }
    result
}

async fn run_in(
    a: &ViewsArgs,
    backend: Backend,
    dir: &Path,
    env: &[(String, String)],
) -> Result<BackendRun, String> {
    let name = backend.name();
    let say = |s: String| eprintln!("si-load views: {name}: {s}");
    let t = Instant::now();
    let out = cli(&a.binary, env, &["migrate"], a.setup_timeout).await?;
    say(format!(
        "{} ({:.1} s)",
        out.trim(),
        t.elapsed().as_secs_f64()
    ));
    cli(
        &a.binary,
        env,
        &["create-admin", "--email", EMAIL, "--project", "First"],
        a.setup_timeout,
    )
    .await?;
    let t = Instant::now();
    let (events, days) = (a.events.to_string(), a.days.to_string());
    say(format!(
        "seeding {} documents over {days} days",
        thousands(a.events)
    ));
    let out = cli(
        &a.binary,
        env,
        &[
            "seed-demo",
            "--owner",
            EMAIL,
            "--events",
            &events,
            "--days",
            &days,
        ],
        a.setup_timeout,
    )
    .await?;
    let seed_took = t.elapsed();
    let project = parse_project(&out)?.id;
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|l| l.trim().to_string())
            .unwrap_or_default()
    };
    let seeded = line("seeded:");
    let setup = format!(
        "`seed-demo` {:.1} s in all (rollups built: {})",
        seed_took.as_secs_f64(),
        match line("rollups built:") {
            s if s.is_empty() => "–".to_string(),
            s => s.split(" (").next().unwrap_or(&s).to_string(),
        }
    );
    say(format!("{seeded}; {setup}"));

    let mut server = Server::start(a, env, dir.join("server.log"), project).await?;
    let measured = measure(a, backend, &mut server).await;
    server.stop().await;
    let (rows, misses, hits, redone) = measured?;
    Ok(BackendRun {
        backend,
        seeded,
        setup,
        rows,
        misses,
        hits,
        redone,
    })
}

type Measured = (Vec<Row>, usize, usize, usize);

async fn measure(a: &ViewsArgs, backend: Backend, s: &mut Server) -> Result<Measured, String> {
    let name = backend.name();
    let base = format!("/projects/{}", s.project);
    let tf = &a.timeframe;
    // An event name and an error fingerprint present in the demo data: the most frequent ones.
    let (_, body) = s
        .get_ok(&format!("{base}/events?timeframe={tf}"), true)
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let event_name = v
        .pointer("/topEvents/0/eventName")
        .and_then(|n| n.as_str())
        .ok_or("no event in the demo data (topEvents is empty)")?
        .to_string();
    let (_, body) = s
        .get_ok(&format!("{base}/errors?timeframe={tf}"), true)
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let fingerprint = v
        .pointer("/groupedErrors/0/fingerprint")
        .and_then(|n| n.as_str())
        .ok_or("no error in the demo data (groupedErrors is empty)")?
        .to_string();
    eprintln!("si-load views: {name}: event {event_name:?}, error {fingerprint}");

    let cases = cases(&s.project, tf, &event_name, &fingerprint);
    let (mut misses, mut hits, mut redone) = (0, 0, 0);
    let mut rows = Vec::new();
    for case in cases {
        // One unmeasured uncached request first (connection, page cache, lazily built rollups).
        s.sample(&case, true, &mut redone).await?;
        let mut row = Row {
            case: case.clone(),
            backend,
            uncached: Vec::new(),
            cached: Vec::new(),
            bypass: false,
            figure: None,
        };
        for _ in 0..a.runs {
            let (took, cache, body) = s.sample(&case, true, &mut redone).await?;
            if case.json && row.figure.is_none() {
                row.figure = case.figure.read(&body);
            }
            row.uncached.push(took);
            if cache == Cache::Bypass {
                row.bypass = true;
                continue;
            }
            misses += 1;
            let (took, cache, _) = s.sample(&case, false, &mut redone).await?;
            if cache != Cache::Hit {
                return Err(format!(
                    "GET {}: the repeat did not hit the cache",
                    case.path
                ));
            }
            hits += 1;
            row.cached.push(took);
        }
        let st = Stat::of(&row.uncached);
        eprintln!(
            "si-load views: {name}: {} {} [{}] uncached p50 {}{}",
            case.view,
            case.request,
            if case.filters.is_empty() {
                "no filter"
            } else {
                &case.filters
            },
            ms(st.p50),
            if row.bypass {
                " (never cached)".to_string()
            } else {
                format!(", cached p50 {}", ms(Stat::of(&row.cached).p50))
            }
        );
        rows.push(row);
    }
    // The HTML rows show the count of their JSON twin.
    for i in 0..rows.len() {
        if rows[i].figure.is_none() {
            let c = &rows[i].case;
            rows[i].figure = rows
                .iter()
                .find(|r| r.case.view == c.view && r.case.filters == c.filters && r.case.json)
                .and_then(|r| r.figure);
        }
    }
    Ok((rows, misses, hits, redone))
}

// ---------------------------------------------------------------------------------------------
// Figures and the report.

#[derive(Clone, Copy, Debug, Default)]
struct Stat {
    p50: Duration,
    p95: Duration,
    max: Duration,
}

impl Stat {
    /// Nearest-rank percentiles.
    fn of(samples: &[Duration]) -> Self {
        let mut v = samples.to_vec();
        v.sort_unstable();
        let n = v.len();
        if n == 0 {
            return Self::default();
        }
        let at = |q: f64| v[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
        Self {
            p50: at(0.5),
            p95: at(0.95),
            max: v[n - 1],
        }
    }
}

/// Reads SIGINT and SIGTERM; resolves on the first.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

/// `git describe --always --dirty` of the current directory, if it is a checkout.
fn commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

pub async fn run(a: ViewsArgs) -> Result<(), String> {
    a.validate()?;
    let started = Instant::now();
    let load_before = load_average();
    let date = now_utc();
    let mut runs = Vec::new();
    for &backend in &a.backends {
        eprintln!("si-load views: backend {}", backend.name());
        let outcome = tokio::select! {
            r = run_backend(&a, backend) => r,
            signal = interrupted() => Err(format!(
                "{signal}: stopped; the server was killed, its data directory left in place"
            )),
        };
        runs.push(outcome?);
    }
    let markdown = report(&a, &runs, &date, started.elapsed(), load_before);
    println!("{markdown}");
    if let Some(out) = &a.out {
        std::fs::write(out, &markdown).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("si-load views: report written to {}", out.display());
    }
    Ok(())
}

fn report(
    a: &ViewsArgs,
    runs: &[BackendRun],
    date: &str,
    took: Duration,
    load_before: Option<f64>,
) -> String {
    let machine = Machine::probe();
    let command: Vec<String> = std::iter::once("si-load".to_string())
        .chain(std::env::args().skip(1))
        .collect();
    let mut s = format!(
        "`{}` — {date}, server built from {}, {} × {}, load average before {}, whole run {:.0} s\n\n",
        command.join(" "),
        a.commit
            .clone()
            .or_else(commit)
            .unwrap_or_else(|| "?".into()),
        machine.cpus,
        machine.model,
        load_before.map_or("?".into(), |l| format!("{l:.2}")),
        took.as_secs_f64()
    );
    s += "| backend | seeded | setup |\n|---|---|---|\n";
    for r in runs {
        s += &format!("| {} | {} | {} |\n", r.backend.name(), r.seeded, r.setup);
    }
    s += &format!(
        "\nTimeframe `{}`, {} measured samples per cell (nearest-rank percentiles{}), one unmeasured \
         uncached request before them. Uncached: the project's cache generation bumped before \
         each request; cached: the same request repeated at once. \"÷ dashboard\" is the row's \
         uncached p50 over the uncached p50 of `/dashboard/data` on the same backend. \"count\" is \
         the view's headline figure from its JSON form (views, events, occurrences, errors, \
         measurements).\n\n",
        a.timeframe,
        a.runs,
        if a.runs < 20 {
            ": with fewer than 20 samples p95 is the maximum"
        } else {
            ""
        }
    );
    s += "| view | request | filters | backend | count | uncached p50 | p95 | max | cached p50 | p95 | max | ÷ dashboard |\n\
          |---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    let reference: Vec<(Backend, Duration)> = runs
        .iter()
        .filter_map(|r| {
            r.rows
                .iter()
                .find(|row| row.case.request == "/dashboard/data" && row.case.level == 0)
                .map(|row| (r.backend, Stat::of(&row.uncached).p50))
        })
        .collect();
    // Rows in case order, the backends of one case together.
    let first = match runs.first() {
        Some(r) => r,
        None => return s,
    };
    for i in 0..first.rows.len() {
        for r in runs {
            let Some(row) = r.rows.get(i) else { continue };
            let u = Stat::of(&row.uncached);
            let c = Stat::of(&row.cached);
            let dash = reference
                .iter()
                .find(|(b, _)| *b == row.backend)
                .map(|(_, d)| *d)
                .unwrap_or_default();
            let cached = if row.bypass {
                "never cached | – | –".to_string()
            } else {
                format!("{} | {} | {}", ms(c.p50), ms(c.p95), ms(c.max))
            };
            s += &format!(
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {cached} | {} |\n",
                row.case.view,
                row.case.request,
                if row.case.filters.is_empty() {
                    "–".to_string()
                } else {
                    format!("`{}`", row.case.filters)
                },
                row.backend.name(),
                row.figure.map_or("–".into(), thousands),
                ms(u.p50),
                ms(u.p95),
                ms(u.max),
                if dash.is_zero() {
                    "–".to_string()
                } else {
                    format!("{:.2}×", u.p50.as_secs_f64() / dash.as_secs_f64())
                }
            );
        }
    }
    s += "\nEvery sample answered 200. Checked on the server's `si_cache_requests_total`: ";
    let checks: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{}: {} uncached samples each counted one miss or more and no hit, {} cached \
                 samples each a hit and no miss ({} taken again because the counters did not show \
                 a clean miss or hit, e.g. a cached one whose time bucket had just ended)",
                r.backend.name(),
                thousands(r.misses as u64),
                thousands(r.hits as u64),
                match r.redone {
                    1 => "1 sample".to_string(),
                    n => format!("{n} samples"),
                }
            )
        })
        .collect();
    s += &checks.join("; ");
    s += ". `events/live.json` never goes through the cache (it is the live view).\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_counters_are_summed_by_result() {
        let text = "# TYPE si_cache_requests_total counter\n\
            si_cache_requests_total{result=\"hit\",view=\"dashboard\"} 3\n\
            si_cache_requests_total{result=\"miss\",view=\"dashboard\"} 2\n\
            si_cache_requests_total{view=\"events\",result=\"hit\"} 4\n\
            si_cache_compute_seconds_count{view=\"events\"} 9\n";
        assert_eq!(cache_counts(text), (7, 2));
        assert_eq!(cache_counts(""), (0, 0));
    }

    #[test]
    fn every_view_is_listed_with_its_filters() {
        let cases = cases("p1", "30d", "$click", "abc");
        let unfiltered = cases.iter().filter(|c| c.level == 0).count();
        assert_eq!(unfiltered, 15);
        assert_eq!(cases.iter().filter(|c| c.level == 1).count(), 12);
        assert_eq!(cases.iter().filter(|c| c.level == 2).count(), 12);
        let prefix: Vec<_> = cases.iter().filter(|c| c.level == 3).collect();
        assert_eq!(
            prefix.len(),
            3,
            "page views by URL prefix, HTML and JSON, and the dashboard's data"
        );
        assert!(prefix.iter().all(|c| {
            (c.view == "page views" || c.request == "/dashboard/data")
                && c.path
                    .ends_with("urlPrefix=https%3A%2F%2Fdemo.example%2Fpage%2F1")
        }));
        let detail = cases
            .iter()
            .find(|c| c.view == "event detail" && c.level == 2 && c.json)
            .unwrap();
        assert_eq!(
            detail.path,
            "/projects/p1/events/%24click?timeframe=30d&metaKey=plan&metaValue=pro&clientId=v0"
        );
        assert_eq!(detail.request, "/events/{name} (JSON)");
        assert!(cases.iter().all(|c| c.path.contains("timeframe=30d")));
        // The dashboard page is timed unfiltered; its data route under the page-view filters too.
        assert!(
            !cases
                .iter()
                .any(|c| c.request == "/dashboard" && c.level > 0)
        );
        assert!(
            cases
                .iter()
                .any(|c| c.request == "/dashboard/data" && c.level == 3)
        );
    }

    #[test]
    fn figures_are_read_from_json() {
        let body =
            br#"{"totalViews":12,"eventsByDay":[{"date":"d","count":2},{"date":"e","count":3}]}"#;
        assert_eq!(Figure::At("/totalViews").read(body), Some(12));
        assert_eq!(Figure::SumOf("/eventsByDay").read(body), Some(5));
        assert_eq!(Figure::At("/missing").read(body), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let s = Stat::of(&v);
        assert_eq!(s.p50, Duration::from_millis(5));
        assert_eq!(s.p95, Duration::from_millis(10));
        assert_eq!(s.max, Duration::from_millis(10));
    }
}
