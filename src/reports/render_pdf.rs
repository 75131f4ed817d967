//! PDF: an A4 document a person would send to a client — title, project and period, summary
//! KPIs, each data type's section with its bar chart (vector, the same geometry as the HTML's
//! SVG) and table, and the AI insights when asked. Written with `printpdf` (pure Rust, no
//! browser). Text uses the configured TrueType font, embedded as a subset of the glyphs the
//! document uses (DejaVu Sans whole is ~0.7 MB; a report's subset a few tens of KB), so
//! non-Latin text survives and stays extractable (the font's `ToUnicode` map is written from
//! the subset's own character map); without one, the built-in Helvetica shows Latin-1 only
//! (other characters become `?`).
//!
//! `printpdf`'s document is single-threaded: call [`render`] from a blocking task.

use super::charts::{bars, max_value, short};
use super::context::{self, kpis, s, short_time, table, title};
use super::model::DataType;
use printpdf::{
    BuiltinFont, Color, IndirectFontRef, Line, Mm, PdfDocument, PdfDocumentReference,
    PdfLayerReference, Point, Rect, Rgb,
};
use serde_json::Value;

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
/// 48 pt margins (1.x's), in mm.
const MARGIN: f32 = 17.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
const PT_TO_MM: f32 = 0.3528;

fn rgb(r: f32, g: f32, b: f32) -> Color {
    Color::Rgb(Rgb::new(r, g, b, None))
}

struct Writer {
    doc: PdfDocumentReference,
    font: IndirectFontRef,
    unicode: bool,
    layer: PdfLayerReference,
    /// The baseline of the next line, mm from the bottom.
    y: f32,
    page: usize,
    footer: String,
}

impl Writer {
    /// Text the font can show: with the built-in font, characters outside Latin-1 become `?`.
    fn clean(&self, text: &str) -> String {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    ' '
                } else if self.unicode || (c as u32) < 0x100 {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    }

    /// Rough width of `text` at `size` pt, in mm (an average glyph is 0.55 em wide).
    fn width(text: &str, size: f32) -> f32 {
        text.chars().count() as f32 * size * 0.55 * PT_TO_MM
    }

    /// `text` cut to fit `max_mm` at `size`, with an ellipsis when cut.
    fn fit(text: &str, size: f32, max_mm: f32) -> String {
        if Self::width(text, size) <= max_mm {
            return text.to_string();
        }
        let keep = ((max_mm / (size * 0.55 * PT_TO_MM)) as usize).saturating_sub(1);
        let mut out: String = text.chars().take(keep).collect();
        out.push('…');
        out
    }

    fn text_at(&self, text: &str, size: f32, x: f32, y: f32, color: Color) {
        self.layer.set_fill_color(color);
        self.layer
            .use_text(self.clean(text), size, Mm(x), Mm(y), &self.font);
    }

    fn new_page(&mut self) {
        let (page, layer) = self.doc.add_page(Mm(PAGE_W), Mm(PAGE_H), "content");
        self.layer = self.doc.get_page(page).get_layer(layer);
        self.page += 1;
        self.y = PAGE_H - MARGIN;
        self.draw_footer();
    }

    fn draw_footer(&self) {
        let text = format!("{} · page {}", self.footer, self.page);
        self.text_at(&text, 8.0, MARGIN, MARGIN / 2.0, rgb(0.45, 0.5, 0.56));
    }

    /// Makes room for `mm` more below the cursor, starting a page when needed.
    fn need(&mut self, mm: f32) {
        if self.y - mm < MARGIN {
            self.new_page();
        }
    }

    /// A line of text at the cursor, then the cursor moves down.
    fn line(&mut self, text: &str, size: f32, color: Color) {
        let h = size * PT_TO_MM * 1.45;
        self.need(h);
        self.y -= size * PT_TO_MM;
        self.text_at(
            &Self::fit(text, size, CONTENT_W),
            size,
            MARGIN,
            self.y,
            color,
        );
        self.y -= h - size * PT_TO_MM;
    }

    /// A paragraph wrapped on spaces to the content width.
    fn paragraph(&mut self, text: &str, size: f32) {
        let per_line = (CONTENT_W / (size * 0.55 * PT_TO_MM)) as usize;
        let mut current = String::new();
        for word in text.split_whitespace() {
            if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > per_line
            {
                self.line(&current, size, rgb(0.06, 0.09, 0.16));
                current.clear();
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        if !current.is_empty() {
            self.line(&current, size, rgb(0.06, 0.09, 0.16));
        }
    }

    fn heading(&mut self, text: &str) {
        self.need(22.0);
        self.y -= 4.0;
        self.line(text, 15.0, rgb(0.19, 0.18, 0.51));
        let y = self.y + 1.0;
        self.rule(y);
    }

    fn rule(&self, y: f32) {
        self.layer.set_outline_color(rgb(0.89, 0.91, 0.94));
        self.layer.set_outline_thickness(0.6);
        self.layer.add_line(Line {
            points: vec![
                (Point::new(Mm(MARGIN), Mm(y)), false),
                (Point::new(Mm(PAGE_W - MARGIN), Mm(y)), false),
            ],
            is_closed: false,
        });
    }

    fn rect(&self, x1: f32, y1: f32, x2: f32, y2: f32, color: Color) {
        self.layer.set_fill_color(color);
        self.layer
            .add_rect(Rect::new(Mm(x1), Mm(y1), Mm(x2), Mm(y2)));
    }

    /// KPI boxes, three to a row.
    fn kpis(&mut self, items: &[(String, String)]) {
        let w = (CONTENT_W - 8.0) / 3.0;
        for row in items.chunks(3) {
            self.need(20.0);
            let top = self.y - 2.0;
            for (i, (label, value)) in row.iter().enumerate() {
                let x = MARGIN + i as f32 * (w + 4.0);
                self.rect(x, top - 16.0, x + w, top, rgb(0.95, 0.96, 0.98));
                self.text_at(
                    &Self::fit(label, 8.5, w - 4.0),
                    8.5,
                    x + 2.5,
                    top - 5.0,
                    rgb(0.39, 0.45, 0.55),
                );
                self.text_at(
                    &Self::fit(value, 15.0, w - 4.0),
                    15.0,
                    x + 2.5,
                    top - 13.0,
                    rgb(0.06, 0.09, 0.16),
                );
            }
            self.y = top - 19.0;
        }
    }

    /// A bar chart of `series`, 55 mm tall.
    fn chart(&mut self, caption: &str, series: &[(String, f64)]) {
        let h = 50.0;
        // The caption stays on the chart's page.
        self.need(h + 14.0);
        self.line(caption, 9.5, rgb(0.28, 0.33, 0.41));
        let left = MARGIN + 12.0;
        let plot_w = CONTENT_W - 12.0;
        let bottom = self.y - h;
        self.layer.set_outline_color(rgb(0.58, 0.64, 0.72));
        self.layer.set_outline_thickness(0.5);
        self.layer.add_line(Line {
            points: vec![
                (Point::new(Mm(left), Mm(bottom)), false),
                (Point::new(Mm(left + plot_w), Mm(bottom)), false),
            ],
            is_closed: false,
        });
        if series.is_empty() {
            self.text_at(
                "No data",
                10.0,
                left + plot_w / 2.0 - 7.0,
                bottom + h / 2.0,
                rgb(0.39, 0.45, 0.55),
            );
        } else {
            self.text_at(
                &short(max_value(series)),
                7.0,
                MARGIN,
                bottom + h - 3.0,
                rgb(0.39, 0.45, 0.55),
            );
            let all = bars(series);
            let every = (all.len() / 6).max(1);
            for (i, b) in all.iter().enumerate() {
                let x = left + b.x as f32 * plot_w;
                let top = bottom + b.height as f32 * (h - 4.0);
                if top > bottom {
                    self.rect(
                        x,
                        bottom,
                        x + b.width as f32 * plot_w,
                        top,
                        rgb(0.31, 0.27, 0.9),
                    );
                }
                if i % every == 0 {
                    self.text_at(
                        &Self::fit(&b.label, 6.5, plot_w / 6.0),
                        6.5,
                        x,
                        bottom - 4.0,
                        rgb(0.39, 0.45, 0.55),
                    );
                }
            }
        }
        self.y = bottom - 8.0;
    }

    /// A table with the first column wide and the others narrow.
    fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) {
        let n = headers.len().max(1);
        let first = if n > 1 { CONTENT_W * 0.55 } else { CONTENT_W };
        let other = if n > 1 {
            (CONTENT_W - first) / (n - 1) as f32
        } else {
            0.0
        };
        let col_x = |i: usize| {
            if i == 0 {
                MARGIN
            } else {
                MARGIN + first + (i - 1) as f32 * other
            }
        };
        let col_w = |i: usize| if i == 0 { first - 2.0 } else { other - 2.0 };
        let draw = |this: &mut Self, cells: &[String], size: f32, color: Color| {
            this.need(6.0);
            this.y -= 4.2;
            for (i, c) in cells.iter().enumerate() {
                this.text_at(
                    &Self::fit(c, size, col_w(i)),
                    size,
                    col_x(i),
                    this.y,
                    color.clone(),
                );
            }
            this.y -= 1.6;
            this.rule(this.y);
        };
        let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        draw(self, &head, 8.5, rgb(0.39, 0.45, 0.55));
        if rows.is_empty() {
            draw(
                self,
                &["No data in this period.".to_string()],
                9.0,
                rgb(0.06, 0.09, 0.16),
            );
        }
        for r in rows {
            draw(self, r, 9.0, rgb(0.06, 0.09, 0.16));
        }
        self.y -= 3.0;
    }
}

/// Renders the context as PDF bytes. `font`: TrueType bytes to embed (else built-in Helvetica).
/// Errors: the font cannot be read, or the writer failed.
pub fn render(ctx: &Value, report_name: &str, font: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let meta = &ctx["meta"];
    let project = s(meta, "projectName");
    let (doc, page, layer) =
        // The document-info title is written in PDFDocEncoding: keep it to plain separators.
        PdfDocument::new(format!("{project} - {report_name}"), Mm(PAGE_W), Mm(PAGE_H), "content");
    let (font, unicode) = match font {
        // Subset when the document is saved: only the glyphs the pages use are embedded.
        Some(bytes) => (
            doc.add_external_font_with_subsetting(std::io::Cursor::new(bytes), true)
                .map_err(|e| format!("PDF font: {e}"))?,
            true,
        ),
        None => (
            doc.add_builtin_font(BuiltinFont::Helvetica)
                .map_err(|e| format!("PDF font: {e}"))?,
            false,
        ),
    };
    let layer = doc.get_page(page).get_layer(layer);
    let mut w = Writer {
        doc,
        font,
        unicode,
        layer,
        y: PAGE_H - MARGIN,
        page: 1,
        footer: format!("{project} · {report_name} · SuperInsights"),
    };
    w.draw_footer();
    w.line(project, 22.0, rgb(0.06, 0.09, 0.16));
    w.line(report_name, 13.0, rgb(0.28, 0.33, 0.41));
    w.y -= 2.0;
    w.line(
        &format!(
            "Period: {} to {} ({})",
            short_time(s(meta, "start")),
            short_time(s(meta, "end")),
            s(meta, "timeframe")
        ),
        10.0,
        rgb(0.06, 0.09, 0.16),
    );
    w.line(
        &format!(
            "Environment: {} · generated {}",
            s(meta, "environment"),
            short_time(s(meta, "generatedAt"))
        ),
        10.0,
        rgb(0.28, 0.33, 0.41),
    );
    if let Some(f) = meta.get("filters").and_then(Value::as_object)
        && !f.is_empty()
    {
        w.paragraph(&format!("Filters: {}", Value::Object(f.clone())), 9.0);
    }
    let sections = context::sections(ctx);
    w.heading("Summary");
    let items: Vec<(String, String)> = sections
        .iter()
        .flat_map(|d| kpis(*d, &ctx[d.as_str()]))
        .collect();
    w.kpis(&items);
    if ctx.pointer("/summary/empty").and_then(Value::as_bool) == Some(true) {
        w.line(
            "No data was recorded in this period.",
            11.0,
            rgb(0.63, 0.38, 0.03),
        );
    }
    for d in &sections {
        let sec = &ctx[d.as_str()];
        // A section's heading starts on the page its chart fits on.
        w.need(90.0);
        w.heading(title(*d));
        let caption = match d {
            DataType::Performance | DataType::All => "p75 per metric (ms)".to_string(),
            _ => format!("{} per day", title(*d)),
        };
        w.chart(&caption, &context::chart_series(*d, sec));
        let (headers, rows) = table(*d, sec);
        w.table(&headers, &rows);
    }
    if let Some(ai) = ctx.get("aiInsights").and_then(Value::as_str) {
        w.heading("AI insights");
        for para in ai.split("\n\n") {
            let text = para
                .lines()
                .map(|l| l.trim_start_matches(['#', '*', '-', '>', ' ']).trim())
                .collect::<Vec<_>>()
                .join(" ");
            if !text.is_empty() {
                w.paragraph(&text, 10.0);
                w.y -= 1.5;
            }
        }
    }
    w.doc
        .save_to_bytes()
        .map_err(|e| format!("PDF writer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pdf_is_written_with_and_without_an_embedded_font() {
        let ctx = json!({
            "meta": {"projectName": "Shop", "timeframe": "7d", "start": "a", "end": "b"},
            "summary": {"totalCount": 3, "empty": false},
            "pageviews": {"total": 3, "uniqueVisitors": 2,
                "byDay": [{"date": "2024-01-01", "count": 3}],
                "topPages": [{"url": "/ünï", "views": 3, "uniqueVisitors": 2}]},
        });
        let pdf = render(&ctx, "Weekly", None).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let font = std::path::Path::new(crate::config::DEFAULT_PDF_FONT);
        if font.exists() {
            let bytes = std::fs::read(font).unwrap();
            let pdf = render(&ctx, "Ежедневный", Some(&bytes)).unwrap();
            assert!(pdf.starts_with(b"%PDF-"));
            // Only the glyphs used are embedded: the whole font alone is ~0.7 MB.
            assert!(
                pdf.len() < 100_000 && bytes.len() > 500_000,
                "{} bytes of PDF for a {} bytes font",
                pdf.len(),
                bytes.len()
            );
        }
    }
}
