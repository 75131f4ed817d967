//! Bar charts for reports: one geometry ([`bars`]) drawn as inline SVG for HTML and as vector
//! paths by the PDF writer, so both formats show the same chart. No scripts, no external assets.

/// The fewest slots a chart is divided into.
pub const MIN_SLOTS: usize = 8;

/// One bar in a unit box: `x`, `width` and `height` as fractions of the plot area (0–1).
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub x: f64,
    pub width: f64,
    pub height: f64,
}

/// Lays out `series` as bars: equal slots with a gap (at least [`MIN_SLOTS`] slots, so a short
/// series does not draw a wall), heights relative to the largest value (an all-zero series has
/// flat bars).
pub fn bars(series: &[(String, f64)]) -> Vec<Bar> {
    let n = series.len().max(MIN_SLOTS) as f64;
    let max = series.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let slot = 1.0 / n;
    series
        .iter()
        .enumerate()
        .map(|(i, (label, value))| Bar {
            label: label.clone(),
            value: *value,
            x: i as f64 * slot + slot * 0.1,
            width: slot * 0.8,
            height: if max > 0.0 { value.max(0.0) / max } else { 0.0 },
        })
        .collect()
}

/// The largest value of a series (the axis label).
pub fn max_value(series: &[(String, f64)]) -> f64 {
    series.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max)
}

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value as a short label (integers without decimals).
pub fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// An inline SVG bar chart titled `title` (`role="img"`, an `aria-label` and a `<title>` per
/// bar with its value). Empty series draw a "No data" note.
pub fn svg_bar_chart(title: &str, series: &[(String, f64)]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 48.0;
    const BOTTOM: f64 = 28.0;
    const TOP: f64 = 12.0;
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - TOP;
    let mut svg = format!(
        "<svg class=\"report-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#94a3b8\"/>",
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    ));
    if series.is_empty() {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#64748b\" font-size=\"14\">No data</text></svg>",
            W / 2.0,
            H / 2.0
        ));
        return svg;
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#64748b\" font-size=\"11\">{}</text>",
        LEFT - 6.0,
        TOP + 10.0,
        esc(&short(max_value(series)))
    ));
    let all = bars(series);
    let every = (all.len() / 8).max(1);
    for (i, b) in all.iter().enumerate() {
        let x = LEFT + b.x * plot_w;
        let h = b.height * plot_h;
        let y = TOP + plot_h - h;
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4f46e5\"><title>{}: {}</title></rect>",
            b.width * plot_w,
            esc(&b.label),
            esc(&short(b.value))
        ));
        if i % every == 0 {
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#64748b\" font-size=\"10\">{}</text>",
                x + b.width * plot_w / 2.0,
                H - 10.0,
                esc(&b.label)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value() {
        let b = bars(&[("a".into(), 5.0), ("b".into(), 10.0)]);
        assert_eq!(b[1].height, 1.0);
        assert_eq!(b[0].height, 0.5);
        assert!(b[0].x < b[1].x && b[0].x + b[0].width < b[1].x);
        assert!(bars(&[("z".into(), 0.0)])[0].height == 0.0);
    }

    #[test]
    fn svg_escapes_labels() {
        let svg = svg_bar_chart("<t>", &[("<script>".into(), 1.0)]);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg_bar_chart("t", &[]).contains("No data"));
    }
}
