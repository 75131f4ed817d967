//! Turning results into text: the plain summary of `si-load ingest` and the Markdown tables of
//! `si-load suite` (targets from docs/design next to the figures, one phase table per run, memory
//! and durability per run), ready to paste into `docs/benchmarks.md`. No measuring happens here.

use crate::{
    load::{LoadResult, LoadSpec},
    probe::Machine,
};
use std::{fmt::Write, time::Duration};

/// One measured phase with the CPU the two sides used during it (fractions of one core).
pub struct Phase {
    pub label: String,
    pub spec: LoadSpec,
    pub result: LoadResult,
    pub server_cpu: Option<f64>,
    pub client_cpu: Option<f64>,
}

/// Everything one suite run measured.
pub struct SuiteRun {
    pub batch: Phase,
    pub single: Phase,
    pub bare: Phase,
    pub open: Phase,
    pub idle_rss_kib: Option<u64>,
    pub after_rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    /// Items the server acknowledged over all phases, warm-ups included (201 count + 202 spooled).
    pub acked: u64,
    /// Rows in `events` + `pageviews` after the server exited.
    pub stored: Option<u64>,
    /// Why `stored` is missing, when it is.
    pub stored_error: Option<String>,
    pub spool_bytes: u64,
    pub exit: String,
    pub shutdown: Duration,
    pub log_warnings: usize,
    pub log_errors: usize,
    pub log_sample: Vec<String>,
    pub load_before: Option<f64>,
}

impl SuiteRun {
    /// Acknowledged minus stored: positive means lost, negative means stored but never
    /// acknowledged (e.g. a request that timed out after its commit).
    pub fn lost(&self) -> Option<i64> {
        self.stored.map(|s| self.acked as i64 - s as i64)
    }

    fn ratio(&self) -> f64 {
        let bare = self.bare.result.ok_per_sec();
        if bare > 0.0 {
            self.single.result.ok_per_sec() / bare
        } else {
            0.0
        }
    }
}

/// What the suite report says about how it was run.
pub struct SuiteMeta {
    pub date: String,
    pub machine: Machine,
    pub command: String,
    pub binary: String,
    pub data_parent: String,
    pub seconds: u64,
    pub warmup: Duration,
    pub concurrency: usize,
    pub batch: usize,
    pub rate: f64,
    pub timestamp_spread: Duration,
    /// Demo documents written before the server started (`--seed-events`).
    pub seed_events: u64,
    /// Server environment the suite set beyond `DATA_DIR`, `HOST`, `PORT` and `RUST_LOG`.
    pub settings: Vec<String>,
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate(x: f64) -> String {
    thousands(x.round().max(0.0) as u64)
}

pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:.0}%", v * 100.0))
}

fn mb(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1} MB", mb_of(k)))
}

/// KiB (as /proc reports) to MB (10^6 bytes, the unit of the target).
fn mb_of(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn yes_no(met: bool) -> &'static str {
    if met { "**yes**" } else { "**no**" }
}

/// The plain-text summary of one `si-load ingest` run.
pub fn ingest_text(phase: &Phase) -> String {
    let r = &phase.result;
    let m = &r.measured;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "requests     {} in {:.1}s ({} req/s answered 2xx, {} req/s sent); mean body {} bytes",
        thousands(m.requests),
        r.seconds,
        rate(r.ok_per_sec()),
        rate(r.sent_per_sec()),
        r.mean_body_bytes
    );
    let _ = writeln!(
        s,
        "statuses     201: {}  202: {}  other 2xx: {}  4xx: {}  5xx: {}  other: {}  transport errors: {}",
        thousands(m.created_201),
        thousands(m.accepted_202),
        thousands(m.ok_2xx - m.created_201 - m.accepted_202),
        thousands(m.client_4xx),
        thousands(m.server_5xx),
        thousands(m.other_status),
        thousands(m.transport_errors)
    );
    let _ = writeln!(
        s,
        "items        {} acknowledged ({} stored + {} spooled) = {} {}/s",
        thousands(m.items_acked()),
        thousands(m.items_stored),
        thousands(m.items_spooled),
        rate(r.items_per_sec()),
        phase.spec.channel.noun()
    );
    let _ = writeln!(
        s,
        "latency      {} samples: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}{}",
        thousands(r.latency.count as u64),
        ms(r.latency.p50),
        ms(r.latency.p90),
        ms(r.latency.p99),
        ms(r.latency.p999),
        ms(r.latency.max),
        ms(r.latency.mean),
        if r.service.is_some() {
            " (from scheduled send time)"
        } else {
            ""
        }
    );
    if let Some(svc) = r.service {
        let _ = writeln!(
            s,
            "service time p50 {}  p99 {}  max {} (from actual send); late sends: {}",
            ms(svc.p50),
            ms(svc.p99),
            ms(svc.max),
            thousands(m.late_sends)
        );
    }
    let _ = writeln!(
        s,
        "warm-up incl {} requests, {} items acknowledged; client CPU {} of one core",
        thousands(r.total.requests),
        thousands(r.total.items_acked()),
        pct(phase.client_cpu)
    );
    if let Some(e) = &r.first_error {
        let _ = writeln!(
            s,
            "first error  {}",
            e.chars().take(300).collect::<String>()
        );
    }
    s
}

/// One Markdown table row per phase.
pub fn phase_table(phases: &[&Phase]) -> String {
    let mut s = String::from(
        "| Phase | Requests | 201 | 202 | 4xx | 5xx | Transport errors | Items acked | Items/s | Req/s (2xx) | p50 | p90 | p99 | max | CPU server | CPU client |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for p in phases {
        let r = &p.result;
        let m = &r.measured;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.label,
            thousands(m.requests),
            thousands(m.created_201),
            thousands(m.accepted_202),
            thousands(m.client_4xx),
            thousands(m.server_5xx),
            thousands(m.transport_errors),
            thousands(m.items_acked()),
            rate(r.items_per_sec()),
            rate(r.ok_per_sec()),
            ms(r.latency.p50),
            ms(r.latency.p90),
            ms(r.latency.p99),
            ms(r.latency.max),
            pct(p.server_cpu),
            pct(p.client_cpu),
        );
    }
    s
}

/// The whole suite report.
pub fn suite_markdown(meta: &SuiteMeta, runs: &[SuiteRun]) -> String {
    let n = runs.len();
    let mut s = String::new();
    let _ = writeln!(s, "## si-load suite, {}\n", meta.date);
    let _ = writeln!(
        s,
        "- Machine: {} × {}, {:.1} GiB RAM, Linux {}. The load generator runs on the same machine \
         and shares its CPUs with the server.",
        meta.machine.cpus, meta.machine.model, meta.machine.memory_gib, meta.machine.kernel
    );
    let _ = writeln!(s, "- Command: `{}`", meta.command);
    let _ = writeln!(
        s,
        "- Server: `{}` with its defaults ({}), a fresh `DATA_DIR` under `{}` per run, \
         `RUST_LOG=warn`, bound to 127.0.0.1; also set: {}.",
        meta.binary,
        if meta.settings.iter().any(|s| s.starts_with("MONGODB_URI=")) {
            "MongoDB at `MONGODB_URI`, a fresh database per run"
        } else {
            "embedded SQLite, `SQLITE_SYNCHRONOUS=normal` unless set below"
        },
        meta.data_parent,
        meta.settings
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if meta.seed_events > 0 {
        let _ = writeln!(
            s,
            "- Before the server started, `superinsights seed-demo` wrote {} demo documents over \
             30 days into the store (another project, rollups built); the loss check counts only \
             what the phases added.",
            thousands(meta.seed_events)
        );
    }
    let _ = writeln!(
        s,
        "- Each phase: {} warm-up (not in the figures, but in the loss check), then {}s measured; \
         {} keep-alive HTTP/1.1 connections, one per worker; `POST /v1/events` with SDK-shaped \
         event bodies (`Authorization: Bearer pk_…`, browser User-Agents, timestamps stamped at \
         send time, a batch's items spread over the {} before it).",
        crate::args::show_duration(meta.warmup),
        meta.seconds,
        meta.concurrency,
        crate::args::show_duration(meta.timestamp_spread)
    );
    let _ = writeln!(
        s,
        "- Open loop: sends scheduled at {} req/s; latency counted from the scheduled send time \
         (no coordinated omission).",
        meta.rate
    );
    let _ = writeln!(
        s,
        "- CPU columns: CPU time used during the phase (warm-up included) as % of one core; \
         the machine has {} cores in all.",
        meta.machine.cpus
    );
    let loads: Vec<String> = runs
        .iter()
        .map(|r| r.load_before.map_or("?".into(), |l| format!("{l:.2}")))
        .collect();
    let _ = writeln!(
        s,
        "- 1-minute load average before each run: {} (the machine is shared).\n",
        loads.join(", ")
    );

    // Headline: medians across runs; loss from the worst run.
    let events = median(
        runs.iter()
            .map(|r| r.batch.result.items_per_sec())
            .collect(),
    );
    let single = median(runs.iter().map(|r| r.single.result.ok_per_sec()).collect());
    let bare = median(runs.iter().map(|r| r.bare.result.ok_per_sec()).collect());
    let ratio = median(runs.iter().map(SuiteRun::ratio).collect());
    let p99 = median(
        runs.iter()
            .map(|r| r.open.result.latency.p99.as_secs_f64() * 1000.0)
            .collect(),
    );
    let p50 = median(
        runs.iter()
            .map(|r| r.open.result.latency.p50.as_secs_f64() * 1000.0)
            .collect(),
    );
    let idle = median(
        runs.iter()
            .map(|r| r.idle_rss_kib.map_or(f64::NAN, mb_of))
            .collect(),
    );
    let after = median(
        runs.iter()
            .map(|r| r.after_rss_kib.map_or(f64::NAN, mb_of))
            .collect(),
    );
    let peak = median(
        runs.iter()
            .map(|r| r.peak_rss_kib.map_or(f64::NAN, mb_of))
            .collect(),
    );
    let worst_lost = runs.iter().map(SuiteRun::lost).max().flatten();
    let all_counted = runs.iter().all(|r| r.stored.is_some());
    let acked_total: u64 = runs.iter().map(|r| r.acked).sum();
    let errors_total: u64 = runs
        .iter()
        .flat_map(|r| [&r.batch, &r.single, &r.open])
        .map(|p| {
            let t = &p.result.total;
            t.transport_errors + t.server_5xx + t.client_4xx
        })
        .sum();

    let basis = if n == 1 {
        "1 run".to_string()
    } else {
        format!("median of {n} runs; loss: worst run")
    };
    let _ = writeln!(s, "### Targets ({basis})\n");
    let _ = writeln!(s, "| Target (design.md) | Goal | Measured | Met |");
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| Ingest, batches of {} ({} connections) | ≥ 50,000 events/s | {} events/s | {} |",
        meta.batch,
        meta.concurrency,
        rate(events),
        yes_no(events >= 50_000.0)
    );
    let lost_text = match worst_lost {
        Some(l) if all_counted => format!(
            "{l} (of {} acknowledged over all runs)",
            thousands(acked_total)
        ),
        _ => "not counted (see below)".into(),
    };
    let _ = writeln!(
        s,
        "| Nothing lost: acknowledged − stored after SIGTERM | 0 | {lost_text} | {} |",
        yes_no(all_counted && worst_lost.is_some_and(|l| l <= 0))
    );
    let _ = writeln!(
        s,
        "| Single-item throughput vs a bare axum handler (same run, same client) | ≥ 0.5× | \
         {ratio:.2}× ({} vs {} req/s) | {} |",
        rate(single),
        rate(bare),
        yes_no(ratio >= 0.5)
    );
    let _ = writeln!(
        s,
        "| Ingest p99 at {} req/s (open loop, single items) | ≤ 5 ms | {p99:.2} ms (p50 {p50:.2} ms) | {} |",
        rate(meta.rate),
        yes_no(p99 <= 5.0)
    );
    let _ = writeln!(
        s,
        "| Idle RSS | ≤ 30 MB | {idle:.1} MB | {} |",
        yes_no(idle <= 30.0)
    );
    let _ = writeln!(
        s,
        "| RSS after the load phases (no target) | – | {after:.1} MB (peak {peak:.1} MB) | – |"
    );
    let _ = writeln!(
        s,
        "| Non-2xx answers and transport errors against the server (no target) | – | {} | – |\n",
        thousands(errors_total)
    );

    for (i, r) in runs.iter().enumerate() {
        let _ = writeln!(s, "### Run {} of {n}: phases\n", i + 1);
        s.push_str(&phase_table(&[&r.batch, &r.single, &r.bare, &r.open]));
        let o = &r.open.result;
        if let Some(svc) = o.service {
            let _ = writeln!(
                s,
                "\nOpen loop: {} req/s sent (target {}), {} sends more than 1 ms late; time from the \
                 actual send: p50 {}, p99 {}, max {}.",
                rate(o.sent_per_sec()),
                rate(meta.rate),
                thousands(o.measured.late_sends),
                ms(svc.p50),
                ms(svc.p99),
                ms(svc.max)
            );
        }
        for p in [&r.batch, &r.single, &r.bare, &r.open] {
            if let Some(e) = &p.result.first_error {
                let _ = writeln!(
                    s,
                    "\nFirst error in \"{}\": `{}`",
                    p.label,
                    e.chars().take(200).collect::<String>().replace('`', "'")
                );
            }
        }
        s.push('\n');
    }

    let _ = writeln!(s, "### Memory and durability per run\n");
    let _ = writeln!(
        s,
        "| Run | Idle RSS | RSS after load | Peak RSS | Items acknowledged | Rows stored | Lost | Spool left | Exit after SIGTERM | Server log |"
    );
    let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
    for (i, r) in runs.iter().enumerate() {
        let stored = match (r.stored, &r.stored_error) {
            (Some(v), _) => thousands(v),
            (None, Some(e)) => format!("error: {e}"),
            (None, None) => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} B | {} in {} | {} warnings, {} errors |",
            i + 1,
            mb(r.idle_rss_kib),
            mb(r.after_rss_kib),
            mb(r.peak_rss_kib),
            thousands(r.acked),
            stored,
            r.lost().map_or("–".into(), |l| l.to_string()),
            thousands(r.spool_bytes),
            r.exit,
            ms(r.shutdown),
            r.log_warnings,
            r.log_errors
        );
    }
    let samples: Vec<&String> = runs.iter().flat_map(|r| &r.log_sample).collect();
    if !samples.is_empty() {
        let _ = writeln!(s, "\nServer log lines (first few warnings/errors):\n");
        s.push_str("```\n");
        for line in samples.iter().take(8) {
            let _ = writeln!(s, "{line}");
        }
        s.push_str("```\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_medians_taken() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(ms(Duration::from_micros(1234)), "1.23 ms");
    }
}
