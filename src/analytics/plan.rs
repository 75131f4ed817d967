//! Range planning for rollups: which part of a time range is read from day, hour and 5-minute
//! rollups and which raw, given the clock. Pure and exhaustively unit-tested.

use crate::domain::analytics::TimeRange;
use std::collections::HashMap;

pub(crate) const HOUR: i64 = 3_600_000;
pub(crate) const DAY: i64 = 24 * HOUR;
/// The finest grain: five minutes.
pub(crate) const SLOT: i64 = 5 * 60_000;

// ---------------------------------------------------------------------------------------------
// Planning a range
// ---------------------------------------------------------------------------------------------

/// How a range is read: raw edges, 5-minute slot rollups, hour rollups, day rollups.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub edges: Vec<(i64, i64)>,
    pub slots: Vec<i64>,
    pub hours: Vec<i64>,
    pub days: Vec<i64>,
}

/// Splits `[a, b]` (inside one edge of the hour split) into full closed 5-minute slots (those
/// ending before the slot of `now`) and the raw rest (under five minutes at each end).
pub(crate) fn split_edge(p: &mut Plan, a: i64, b: i64, now: i64) {
    let first = a.div_euclid(SLOT) + i64::from(a.rem_euclid(SLOT) != 0);
    let last = ((b + 1).div_euclid(SLOT) - 1).min(now.div_euclid(SLOT) - 1);
    if first > last {
        p.edges.push((a, b));
        return;
    }
    if a < first * SLOT {
        p.edges.push((a, first * SLOT - 1));
    }
    p.slots.extend(first..=last);
    if (last + 1) * SLOT <= b {
        p.edges.push(((last + 1) * SLOT, b));
    }
}

/// Splits `[start, end]` into full UTC days, the other full closed hours (those ending before
/// the hour of `now`), the full closed 5-minute slots of the rest, and the raw rest.
pub(crate) fn plan(range: TimeRange, now: i64) -> Plan {
    let (start, end) = (range.start_ms, range.end_ms);
    let mut p = Plan::default();
    if start > end {
        return p;
    }
    let first = start.div_euclid(HOUR) + i64::from(start.rem_euclid(HOUR) != 0);
    let last = ((end + 1).div_euclid(HOUR) - 1).min(now.div_euclid(HOUR) - 1);
    if first > last {
        split_edge(&mut p, start, end, now);
        return p;
    }
    if start < first * HOUR {
        split_edge(&mut p, start, first * HOUR - 1, now);
    }
    if (last + 1) * HOUR <= end {
        split_edge(&mut p, (last + 1) * HOUR, end, now);
    }
    let mut h = first;
    while h <= last {
        if h.rem_euclid(24) == 0 && h + 23 <= last {
            p.days.push(h.div_euclid(24));
            h += 24;
        } else {
            p.hours.push(h);
            h += 1;
        }
    }
    p
}

pub(crate) fn day_version(vers: &HashMap<i64, i64>, day: i64) -> i64 {
    (day * 24..day * 24 + 24)
        .map(|h| vers.get(&h).copied().unwrap_or(0))
        .sum()
}

/// Rows of consecutive buckets of one grain as (grain, first, last) spans.
pub(crate) fn spans_of(grain: i64, buckets: &[i64]) -> Vec<(i64, i64, i64)> {
    let mut spans: Vec<(i64, i64, i64)> = Vec::new();
    for &h in buckets {
        match spans.last_mut() {
            Some(s) if s.2 + 1 == h => s.2 = h,
            _ => spans.push((grain, h, h)),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_days_hours_slots_and_raw_edges() {
        let t = |d: i64, h: i64, ms: i64| d * DAY + h * HOUR + ms;
        let min = 60_000;
        let slot = |d: i64, h: i64, m: i64| t(d, h, m * min) / SLOT;
        let now = t(10, 12, 32 * min); // day 10, 12:32 (slot 12:30 is open)
        let p = plan(
            TimeRange {
                start_ms: t(7, 22, 5),
                end_ms: now,
            },
            now,
        );
        assert_eq!(
            p.edges,
            vec![
                (t(7, 22, 5), t(7, 22, 5 * min) - 1),
                (t(10, 12, 30 * min), now)
            ]
        );
        let mut slots: Vec<i64> = (slot(7, 22, 5)..=slot(7, 22, 55)).collect();
        slots.extend(slot(10, 12, 0)..=slot(10, 12, 25));
        assert_eq!((slots.len(), &p.slots), (11 + 6, &slots));
        assert_eq!(p.days, vec![8, 9]);
        let mut hours = vec![7 * 24 + 23];
        hours.extend((0..12).map(|h| 10 * 24 + h));
        assert_eq!(p.hours, hours);
        // Inside the open hour: closed slots, then the open slot raw.
        let q = plan(
            TimeRange {
                start_ms: t(10, 12, 7 * min),
                end_ms: now,
            },
            now,
        );
        assert_eq!(
            q,
            Plan {
                edges: vec![
                    (t(10, 12, 7 * min), t(10, 12, 10 * min) - 1),
                    (t(10, 12, 30 * min), now)
                ],
                slots: (slot(10, 12, 10)..=slot(10, 12, 25)).collect(),
                hours: vec![],
                days: vec![]
            }
        );
        // Inside one slot: all raw.
        let q = plan(
            TimeRange {
                start_ms: t(9, 3, 11 * min),
                end_ms: t(9, 3, 14 * min),
            },
            now,
        );
        assert_eq!((q.edges.len(), q.slots.len()), (1, 0));
        // An edge ending mid-slot in a closed hour: the closed slots, then under 5 minutes raw.
        let q = plan(
            TimeRange {
                start_ms: t(9, 0, 0),
                end_ms: t(9, 1, 12 * min),
            },
            now,
        );
        assert_eq!(q.hours, vec![9 * 24]);
        assert_eq!(q.slots, vec![slot(9, 1, 0), slot(9, 1, 5)]);
        assert_eq!(q.edges, vec![(t(9, 1, 10 * min), t(9, 1, 12 * min))]);
        // Exactly aligned: no edges.
        let r = plan(
            TimeRange {
                start_ms: t(3, 0, 0),
                end_ms: t(5, 0, 0) - 1,
            },
            now,
        );
        assert_eq!(
            r,
            Plan {
                edges: vec![],
                slots: vec![],
                hours: vec![],
                days: vec![3, 4]
            }
        );
    }
}
