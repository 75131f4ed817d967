//! Web vitals: lower-nearest-rank percentiles, the thresholds of each metric, the p75
//! performance score and what the store answers about vitals in a range.

use super::*;

/// Lower-nearest-rank percentile of **sorted** values: the value at index ⌊p·(n−1)⌋.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let index = (p * (sorted.len() - 1) as f64).floor() as usize;
    sorted.get(index.min(sorted.len() - 1)).copied()
}

/// Good / poor thresholds of a web vital (ms, or unitless for CLS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    pub good: f64,
    pub poor: f64,
}

pub const LCP: Thresholds = Thresholds::new(2500.0, 4000.0);
pub const CLS: Thresholds = Thresholds::new(0.1, 0.25);
pub const FID: Thresholds = Thresholds::new(100.0, 300.0);
pub const TTFB: Thresholds = Thresholds::new(800.0, 1800.0);
pub const INP: Thresholds = Thresholds::new(200.0, 500.0);

impl Thresholds {
    pub const fn new(good: f64, poor: f64) -> Self {
        Self { good, poor }
    }

    /// 100 at or below good, 0 at or above poor, linear between; a missing value scores 0.
    pub fn score(self, value: Option<f64>) -> u32 {
        match value {
            None => 0,
            Some(v) if v <= self.good => 100,
            Some(v) if v >= self.poor => 0,
            Some(v) => (100.0 * (self.poor - v) / (self.poor - self.good)).round() as u32,
        }
    }

    /// `good`, `needs-improvement` or `poor`.
    pub fn status(self, value: Option<f64>) -> Option<&'static str> {
        value.map(|v| {
            if v <= self.good {
                "good"
            } else if v <= self.poor {
                "needs-improvement"
            } else {
                "poor"
            }
        })
    }
}

/// The performance score from p75 values: today's Core Web Vitals (LCP, CLS, INP) and TTFB,
/// each scored 0–100 between its thresholds, averaged over the metrics that were measured
/// (SuperInsights 1.x averaged LCP, CLS, FID and TTFB and scored a missing one 0; FID is retired,
/// and its score is still reported, for 1.x clients, but no longer counted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceScore {
    /// 0 when nothing was measured (see `measured`).
    pub score: u32,
    pub lcp_score: u32,
    pub cls_score: u32,
    pub fid_score: u32,
    pub ttfb_score: u32,
    #[serde(default)]
    pub inp_score: u32,
    /// Whether any of LCP, CLS, INP and TTFB was measured: without, there is no score to show.
    #[serde(default)]
    pub measured: bool,
    /// Always `p75`.
    pub basis: String,
}

impl PerformanceScore {
    /// The score badge's class (SuperInsights 1.x's colours): > 75 `good`, ≥ 50 `fair`, else
    /// `poor`; empty without any measurement (there is nothing to grade).
    pub fn badge_class(&self, measurements: u64) -> &'static str {
        if measurements == 0 || !self.measured {
            ""
        } else if self.score > 75 {
            "good"
        } else if self.score >= 50 {
            "fair"
        } else {
            "poor"
        }
    }

    /// The score as shown: the number, or `—` without measurements.
    pub fn shown(&self) -> String {
        if self.measured {
            self.score.to_string()
        } else {
            "—".into()
        }
    }
}

/// p75 values of the metrics the score reads.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScoreInputs {
    pub lcp: Option<f64>,
    pub cls: Option<f64>,
    pub inp: Option<f64>,
    pub ttfb: Option<f64>,
    /// Reported only (retired from Core Web Vitals).
    pub fid: Option<f64>,
}

/// Rounded mean of the scores of the measured metrics among LCP, CLS, INP and TTFB.
pub fn performance_score(p75: ScoreInputs) -> PerformanceScore {
    let counted = [
        (LCP, p75.lcp),
        (CLS, p75.cls),
        (INP, p75.inp),
        (TTFB, p75.ttfb),
    ];
    let scores: Vec<u32> = counted
        .iter()
        .filter_map(|(t, v)| v.map(|v| t.score(Some(v))))
        .collect();
    let score = if scores.is_empty() {
        0
    } else {
        (scores.iter().sum::<u32>() as f64 / scores.len() as f64).round() as u32
    };
    PerformanceScore {
        score,
        lcp_score: LCP.score(p75.lcp),
        cls_score: CLS.score(p75.cls),
        fid_score: FID.score(p75.fid),
        ttfb_score: TTFB.score(p75.ttfb),
        inp_score: INP.score(p75.inp),
        measured: !scores.is_empty(),
        basis: "p75".into(),
    }
}

/// What the store answers about web vitals in a range; the score is derived by the caller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceFigures {
    /// Per metric of [`METRICS`], in that order.
    pub percentiles: Vec<(String, Percentiles)>,
    pub metrics_by_day: Vec<MetricsDay>,
    pub total_measurements: u64,
    /// Metric values outside [`crate::domain::plausible`]'s bounds: stored, but left out of the
    /// percentiles and daily averages above.
    #[serde(default)]
    pub implausible_values: u64,
}

impl PerformanceFigures {
    /// The percentiles of one metric (`lcp`, `cls`, …).
    pub fn of(&self, metric: &str) -> Percentiles {
        self.percentiles
            .iter()
            .find(|(m, _)| m == metric)
            .map(|(_, p)| *p)
            .unwrap_or_default()
    }

    /// The performance score from the p75 values ([`performance_score`]).
    pub fn score(&self) -> PerformanceScore {
        performance_score(ScoreInputs {
            lcp: self.of("lcp").p75,
            cls: self.of("cls").p75,
            inp: self.of("inp").p75,
            ttfb: self.of("ttfb").p75,
            fid: self.of("fid").p75,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.5), Some(5.0), "index floor(0.5*9)=4");
        assert_eq!(percentile(&v, 0.75), Some(7.0), "index floor(6.75)=6");
        assert_eq!(percentile(&v, 0.95), Some(9.0), "index floor(8.55)=8");
        assert_eq!(percentile(&[42.0], 0.95), Some(42.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn score_is_linear_between_thresholds_and_averages_the_measured_metrics() {
        assert_eq!(LCP.score(Some(2500.0)), 100);
        assert_eq!(LCP.score(Some(3250.0)), 50);
        assert_eq!(LCP.score(Some(4000.0)), 0);
        assert_eq!(CLS.score(Some(0.175)), 50);
        let s = performance_score(ScoreInputs {
            lcp: Some(2000.0),
            cls: Some(0.05),
            ttfb: Some(1300.0),
            fid: Some(300.0),
            inp: None,
        });
        assert_eq!(
            (s.lcp_score, s.cls_score, s.ttfb_score, s.inp_score, s.score),
            (100, 100, 50, 0, 83),
            "INP unmeasured is left out, not scored 0; FID is not counted"
        );
        assert_eq!((s.fid_score, s.measured), (0, true));
        let s = performance_score(ScoreInputs {
            inp: Some(350.0),
            ..Default::default()
        });
        assert_eq!(
            (s.inp_score, s.score, s.shown()),
            (50, 50, "50".to_string())
        );
        let none = performance_score(ScoreInputs::default());
        assert_eq!(
            (none.score, none.measured, none.shown()),
            (0, false, "—".into())
        );
        assert_eq!(none.badge_class(3), "");
        assert_eq!(TTFB.status(Some(900.0)), Some("needs-improvement"));
        assert_eq!(INP.status(Some(600.0)), Some("poor"));
    }
}
