//! Plausible bounds for measured values. A value outside them (a `durationMs` of 1e308, an LCP of
//! a week) is kept as stored, as SuperInsights 1.x keeps it, but averages and percentiles leave
//! it out and every summary that does so counts it, so one broken client cannot turn a figure
//! into a 309-digit number. Stores apply the same bounds in their queries.

/// Web-vital timings (`lcp`, `fid`, `ttfb`, `inp`) above ten minutes are not measurements.
pub const MAX_VITAL_MS: f64 = 600_000.0;
/// Cumulative layout shift is a unitless score; real pages stay far below this.
pub const MAX_CLS: f64 = 100.0;
/// A timed event (`durationMs`) longer than seven days is not a measurement.
pub const MAX_EVENT_DURATION_MS: f64 = 7.0 * 24.0 * 3_600_000.0;

/// The upper bound of one web-vital metric (`lcp`, `cls`, `fid`, `ttfb`, `inp`).
pub fn vital_bound(metric: &str) -> f64 {
    if metric == "cls" {
        MAX_CLS
    } else {
        MAX_VITAL_MS
    }
}

/// True when `value` of `metric` may enter averages and percentiles.
pub fn vital_is_plausible(metric: &str, value: f64) -> bool {
    value.is_finite() && value >= 0.0 && value <= vital_bound(metric)
}

/// True when an event duration may enter averages and percentiles.
pub fn duration_is_plausible(ms: f64) -> bool {
    ms.is_finite() && (0.0..=MAX_EVENT_DURATION_MS).contains(&ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_keep_real_measurements_and_drop_absurd_ones() {
        assert!(vital_is_plausible("lcp", 2_500.0));
        assert!(vital_is_plausible("lcp", MAX_VITAL_MS));
        assert!(!vital_is_plausible("lcp", MAX_VITAL_MS + 1.0));
        assert!(!vital_is_plausible("ttfb", 1e308));
        assert!(vital_is_plausible("cls", 0.25));
        assert!(!vital_is_plausible("cls", 1_000.0));
        assert!(!vital_is_plausible("inp", f64::INFINITY));
        assert!(duration_is_plausible(12.5));
        assert!(duration_is_plausible(MAX_EVENT_DURATION_MS));
        assert!(!duration_is_plausible(1e308));
        assert!(!duration_is_plausible(-1.0));
    }
}
