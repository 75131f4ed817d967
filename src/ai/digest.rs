//! The offline digest: with no model configured, a deterministic statistical summary of the same
//! payload under the same headings. Pure functions; every figure comes from the payload (and the
//! payload of the previous range of equal length).
//!
//! Anomaly rule (robust, so that one spike cannot hide itself by inflating the spread): over the
//! range's UTC days, zero-filled, a day is anomalous when it is farther from the **median** than
//! `max(3 × 1.4826 × MAD, 50% of the median, 5)` — MAD being the median absolute deviation.
//! Needs at least 5 days.

use super::prompt::{HEADINGS, Payload};
use crate::domain::{
    analytics::{
        CLS, DayCount, FID, INP, LCP, ScoreInputs, TTFB, Thresholds, performance_score, utc_day,
    },
    timestamp::parse_iso,
};
use std::fmt::Write;

/// Fewest days the anomaly rule looks at.
const MIN_DAYS_FOR_ANOMALIES: usize = 5;
const DAY_MS: i64 = 86_400_000;

/// The note every digest carries, so nobody mistakes it for a model's analysis.
pub const NO_MODEL_NOTE: &str = "_No AI model was used: no provider key is configured, so this \
is a statistical digest computed by SuperInsights from the same data a model would receive._";

/// A change between two totals, e.g. `+25.0% (80 → 100)`.
pub fn change(previous: u64, current: u64) -> String {
    if previous == 0 {
        if current == 0 {
            "no change (0 → 0)".into()
        } else {
            format!("new (0 → {current})")
        }
    } else {
        let pct = (current as f64 - previous as f64) * 100.0 / previous as f64;
        format!("{pct:+.1}% ({previous} → {current})")
    }
}

/// A day whose count is unusual for the range.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    pub date: String,
    pub count: u64,
    pub median: f64,
    /// `spike` or `drop`.
    pub kind: &'static str,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Every UTC day from `start_ms` to `end_ms` with its count (0 where `by_day` has none).
pub fn zero_filled(by_day: &[DayCount], start_ms: i64, end_ms: i64) -> Vec<DayCount> {
    let mut out = Vec::new();
    let mut t = start_ms.div_euclid(DAY_MS) * DAY_MS;
    while t <= end_ms && out.len() < 400 {
        let date = utc_day(t);
        let count = by_day
            .iter()
            .find(|d| d.date == date)
            .map_or(0, |d| d.count);
        out.push(DayCount { date, count });
        t += DAY_MS;
    }
    out
}

/// The anomalous days of a zero-filled daily series (see the module doc for the rule).
pub fn anomalies(days: &[DayCount]) -> Vec<Anomaly> {
    if days.len() < MIN_DAYS_FOR_ANOMALIES {
        return Vec::new();
    }
    let mut values: Vec<f64> = days.iter().map(|d| d.count as f64).collect();
    values.sort_by(f64::total_cmp);
    let med = median(&values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let mad = median(&deviations);
    let threshold = (3.0 * 1.4826 * mad).max(0.5 * med).max(5.0);
    days.iter()
        .filter(|d| (d.count as f64 - med).abs() > threshold)
        .map(|d| Anomaly {
            date: d.date.clone(),
            count: d.count,
            median: med,
            kind: if d.count as f64 > med {
                "spike"
            } else {
                "drop"
            },
        })
        .collect()
}

fn range_ms(p: &Payload) -> Option<(i64, i64)> {
    Some((parse_iso(&p.meta.start)?, parse_iso(&p.meta.end)?))
}

fn daily_anomalies(p: &Payload, by_day: &[DayCount]) -> Vec<Anomaly> {
    match range_ms(p) {
        Some((start, end)) => anomalies(&zero_filled(by_day, start, end)),
        None => Vec::new(),
    }
}

const VITALS: [(&str, &str, Thresholds, &str); 5] = [
    ("lcp", "LCP", LCP, " ms"),
    ("cls", "CLS", CLS, ""),
    ("fid", "FID", FID, " ms"),
    ("ttfb", "TTFB", TTFB, " ms"),
    ("inp", "INP", INP, " ms"),
];

fn p75(p: &Payload, metric: &str) -> Option<f64> {
    p.performance
        .percentiles
        .get(&format!("{metric}_p75"))
        .copied()
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The digest of `current`, compared with `previous` (the range of equal length just before).
pub fn digest(current: &Payload, previous: &Payload) -> String {
    let c = current;
    let pr = previous;
    let mut md = String::new();
    let h = |md: &mut String, i: usize| {
        let _ = write!(md, "\n## {}\n\n", HEADINGS[i]);
    };
    let _ = writeln!(
        md,
        "# {} — statistical digest\n\n{NO_MODEL_NOTE}\n\nRange: {} → {} (compared with the immediately preceding range of equal length).",
        c.meta.project_name, c.meta.start, c.meta.end
    );

    // Summary
    h(&mut md, 0);
    let _ = writeln!(
        md,
        "- Page views: {} — unique visitors: {}",
        change(pr.pageviews.total_views, c.pageviews.total_views),
        change(pr.pageviews.unique_visitors, c.pageviews.unique_visitors)
    );
    let _ = writeln!(
        md,
        "- Events: {}",
        change(pr.events.total_events, c.events.total_events)
    );
    let _ = writeln!(
        md,
        "- Errors: {} — distinct fingerprints: {}",
        change(pr.errors.total_errors, c.errors.total_errors),
        change(pr.errors.unique_fingerprints, c.errors.unique_fingerprints)
    );
    let _ = writeln!(
        md,
        "- Web-vital measurements: {}",
        change(
            pr.performance.total_measurements,
            c.performance.total_measurements
        )
    );
    let sparse = c.pageviews.total_views + c.events.total_events + c.errors.total_errors < 20;
    if sparse {
        let _ = writeln!(
            md,
            "- Data is sparse in this range (fewer than 20 page views, events and errors in all): read every figure with care."
        );
    }

    // Highlights / anomalies
    h(&mut md, 1);
    let _ = writeln!(
        md,
        "Rule: a day is flagged when its count is farther from the range's median day than 3 × 1.4826 × MAD (median absolute deviation), 50% of the median, and 5 — whichever is largest. Days without data count as 0; at least {MIN_DAYS_FOR_ANOMALIES} days are needed.\n"
    );
    let mut any = false;
    for (label, series) in [
        ("page views", &c.pageviews.views_by_day),
        ("events", &c.events.events_by_day),
        ("errors", &c.errors.errors_by_day),
    ] {
        for a in daily_anomalies(c, series) {
            any = true;
            let _ = writeln!(
                md,
                "- {}: {} {} ({} vs a median day of {})",
                a.date,
                label,
                a.kind,
                a.count,
                fmt_num(a.median)
            );
        }
    }
    if !any {
        let _ = writeln!(md, "- No day stands out by this rule.");
    }

    // Traffic
    h(&mut md, 2);
    if c.pageviews.total_views == 0 {
        let _ = writeln!(md, "No page views in this range.");
    } else {
        let _ = writeln!(
            md,
            "{} page views from {} unique visitors ({:.2} views per visitor).\n",
            c.pageviews.total_views,
            c.pageviews.unique_visitors,
            c.pageviews.total_views as f64 / c.pageviews.unique_visitors.max(1) as f64
        );
        for page in c.pageviews.top_pages.iter().take(5) {
            let share = page.views as f64 * 100.0 / c.pageviews.total_views as f64;
            let _ = writeln!(md, "- `{}`: {} views ({share:.1}%)", page.url, page.views);
        }
    }

    // Product usage
    h(&mut md, 3);
    if c.events.total_events == 0 {
        let _ = writeln!(md, "No custom events in this range.");
    } else {
        let _ = writeln!(md, "{} events.\n", c.events.total_events);
        for e in c.events.top_events.iter().take(5) {
            let before = pr
                .events
                .top_events
                .iter()
                .find(|x| x.event_name == e.event_name)
                .map_or(0, |x| x.count);
            let _ = writeln!(md, "- `{}`: {}", e.event_name, change(before, e.count));
        }
    }

    // Bottlenecks
    h(&mut md, 4);
    let mut slowest: Vec<_> = c.timed_events.iter().collect();
    slowest.sort_by(|a, b| {
        b.p95_ms
            .unwrap_or(0.0)
            .total_cmp(&a.p95_ms.unwrap_or(0.0))
            .then_with(|| a.event_name.cmp(&b.event_name))
    });
    if slowest.is_empty() {
        let _ = writeln!(
            md,
            "No timed events (events with `durationMs`) in this range."
        );
    } else {
        let _ = writeln!(md, "Slowest timed events by p95:\n");
        for t in slowest.iter().take(5) {
            let _ = writeln!(
                md,
                "- `{}`: p95 {} ms, p50 {} ms, max {} ms over {} occurrences",
                t.event_name,
                t.p95_ms.map_or("?".into(), fmt_num),
                t.p50_ms.map_or("?".into(), fmt_num),
                t.max_ms.map_or("?".into(), fmt_num),
                t.count
            );
        }
    }

    // Reliability
    h(&mut md, 5);
    if c.errors.total_errors == 0 {
        let _ = writeln!(md, "No errors recorded in this range.");
    } else {
        let _ = writeln!(
            md,
            "{} errors across {} fingerprints. Top fingerprints:\n",
            c.errors.total_errors, c.errors.unique_fingerprints
        );
        for f in c.errors.top_fingerprints.iter().take(5) {
            let short: String = f.fingerprint.chars().take(12).collect();
            let _ = writeln!(
                md,
                "- `{short}` × {}: {} (first seen {}, last seen {})",
                f.count,
                f.message.replace(['\n', '\r'], " "),
                f.first_seen.as_deref().unwrap_or("?"),
                f.last_seen.as_deref().unwrap_or("?")
            );
        }
    }

    // Performance
    h(&mut md, 6);
    if c.performance.total_measurements == 0 {
        let _ = writeln!(md, "No web-vital measurements in this range.");
    } else {
        let score = performance_score(ScoreInputs {
            lcp: p75(c, "lcp"),
            cls: p75(c, "cls"),
            inp: p75(c, "inp"),
            ttfb: p75(c, "ttfb"),
            fid: p75(c, "fid"),
        });
        let _ = writeln!(
            md,
            "Performance score {} / 100 (p75-based) from {} measurements.\n",
            score.score, c.performance.total_measurements
        );
        for (key, label, thresholds, unit) in VITALS {
            let Some(v) = p75(c, key) else { continue };
            let status = thresholds.status(Some(v)).unwrap_or("unknown");
            let before = p75(pr, key).map_or(String::new(), |b| {
                format!(" (previous range: {}{unit})", fmt_num(b))
            });
            let _ = writeln!(md, "- {label} p75: {}{unit} — {status}{before}", fmt_num(v));
        }
    }

    // Recommendations
    h(&mut md, 7);
    let mut recs: Vec<String> = Vec::new();
    if let Some(f) = c.errors.top_fingerprints.first() {
        recs.push(format!(
            "Fix the most frequent error ({} occurrences): {}",
            f.count,
            f.message.replace(['\n', '\r'], " ")
        ));
    }
    for (key, label, thresholds, _) in VITALS {
        if matches!(thresholds.status(p75(c, key)), Some("poor")) {
            recs.push(format!(
                "Bring {label} p75 back under the good threshold ({}).",
                fmt_num(thresholds.good)
            ));
        }
    }
    if let Some(t) = slowest
        .first()
        .filter(|t| t.p95_ms.unwrap_or(0.0) >= 1000.0)
    {
        recs.push(format!(
            "Profile `{}`: 5% of its runs take {} ms or more.",
            t.event_name,
            t.p95_ms.map_or("?".into(), fmt_num)
        ));
    }
    if pr.pageviews.total_views > 0
        && (c.pageviews.total_views as f64) < 0.8 * pr.pageviews.total_views as f64
    {
        recs.push("Traffic fell by more than 20% against the previous range: check acquisition channels and recent releases.".into());
    }
    if recs.is_empty() {
        recs.push(
            "Nothing urgent stands out; keep monitoring the same figures next period.".into(),
        );
    }
    for (i, r) in recs.iter().enumerate() {
        let _ = writeln!(md, "{}. {r}", i + 1);
    }

    // Missing instrumentation
    h(&mut md, 8);
    let mut missing = Vec::new();
    if c.pageviews.total_views == 0 {
        missing.push("No page views: is the SDK loaded on every page?");
    }
    if c.events.total_events == 0 {
        missing.push("No custom events: track the key actions (sign-up, purchase) with `track()`.");
    }
    if c.timed_events.is_empty() {
        missing.push("No timed events: measure slow user-facing operations with durations.");
    }
    if c.performance.total_measurements == 0 {
        missing.push("No web vitals: enable performance collection in the SDK.");
    }
    for m in &missing {
        let _ = writeln!(md, "- {m}");
    }
    let _ = writeln!(
        md,
        "- Configure an AI provider key (`OPENROUTER_API_KEY` or `OPENAI_API_KEY`) for a written analysis of causes and next steps."
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::prompt::{TimedEvent, TopFingerprint};

    fn days(counts: &[u64]) -> Vec<DayCount> {
        counts
            .iter()
            .enumerate()
            .map(|(i, c)| DayCount {
                date: format!("2024-01-{:02}", i + 1),
                count: *c,
            })
            .collect()
    }

    #[test]
    fn changes_read_as_percentages_with_both_totals() {
        assert_eq!(change(80, 100), "+25.0% (80 → 100)");
        assert_eq!(change(100, 50), "-50.0% (100 → 50)");
        assert_eq!(change(0, 7), "new (0 → 7)");
        assert_eq!(change(0, 0), "no change (0 → 0)");
    }

    #[test]
    fn a_spike_and_a_drop_are_flagged_by_the_median_rule() {
        // median 10, deviations [0,0,0,0,1,1,40,10] → MAD 0.5; threshold max(2.22, 5, 5) = 5.
        let a = anomalies(&days(&[10, 10, 11, 9, 10, 50, 10, 0]));
        let flagged: Vec<_> = a.iter().map(|x| (x.date.as_str(), x.kind)).collect();
        assert_eq!(
            flagged,
            vec![("2024-01-06", "spike"), ("2024-01-08", "drop")]
        );
        assert_eq!(a[0].median, 10.0);
        assert!(anomalies(&days(&[10, 10, 11, 9, 12, 10, 8])).is_empty());
        assert!(
            anomalies(&days(&[1, 100, 1, 1])).is_empty(),
            "fewer than 5 days"
        );
    }

    #[test]
    fn zero_fill_covers_every_day_of_the_range() {
        let start = parse_iso("2024-01-30T12:00:00Z").unwrap();
        let end = parse_iso("2024-02-02T01:00:00Z").unwrap();
        let filled = zero_filled(
            &[DayCount {
                date: "2024-02-01".into(),
                count: 4,
            }],
            start,
            end,
        );
        let got: Vec<_> = filled.iter().map(|d| (d.date.as_str(), d.count)).collect();
        assert_eq!(
            got,
            vec![
                ("2024-01-30", 0),
                ("2024-01-31", 0),
                ("2024-02-01", 4),
                ("2024-02-02", 0)
            ]
        );
    }

    #[test]
    fn the_digest_has_every_heading_says_no_model_and_reports_the_figures() {
        let mut cur = Payload::default();
        cur.meta.project_name = "Shop".into();
        cur.meta.start = "2024-01-01T00:00:00.000Z".into();
        cur.meta.end = "2024-01-08T00:00:00.000Z".into();
        cur.pageviews.total_views = 120;
        cur.pageviews.unique_visitors = 40;
        cur.pageviews.views_by_day = days(&[10, 10, 10, 10, 60, 10, 10, 10]);
        cur.errors.total_errors = 9;
        cur.errors.unique_fingerprints = 2;
        cur.errors.top_fingerprints = vec![TopFingerprint {
            fingerprint: "abcdef0123456789".into(),
            count: 7,
            message: "TypeError: x is undefined".into(),
            ..Default::default()
        }];
        cur.timed_events = vec![
            TimedEvent {
                event_name: "search".into(),
                count: 5,
                p95_ms: Some(300.0),
                ..Default::default()
            },
            TimedEvent {
                event_name: "checkout".into(),
                count: 3,
                p95_ms: Some(2400.0),
                ..Default::default()
            },
        ];
        cur.performance.total_measurements = 4;
        cur.performance.percentiles.insert("lcp_p75".into(), 4200.0);
        let mut prev = Payload::default();
        prev.pageviews.total_views = 100;
        prev.pageviews.unique_visitors = 50;
        let md = digest(&cur, &prev);
        let mut at = 0;
        for h in HEADINGS {
            at += md[at..].find(&format!("\n## {h}\n")).expect(h);
        }
        assert!(md.contains(NO_MODEL_NOTE));
        assert!(md.contains("Page views: +20.0% (100 → 120) — unique visitors: -20.0% (50 → 40)"));
        assert!(
            md.contains("- 2024-01-05: page views spike (60 vs a median day of 10)"),
            "{md}"
        );
        let checkout = md.find("`checkout`: p95 2400 ms").unwrap();
        assert!(
            checkout < md.find("`search`: p95 300 ms").unwrap(),
            "slowest first"
        );
        assert!(md.contains("`abcdef012345` × 7: TypeError: x is undefined"));
        assert!(md.contains("LCP p75: 4200 ms — poor"));
        assert!(md.contains("1. Fix the most frequent error (7 occurrences)"));
        assert!(md.contains("No custom events"));
    }
}
