//! CSV for table downloads (RFC 4180: comma-separated, CRLF line ends, fields quoted when they
//! hold a comma, quote or line break, quotes doubled), safe to open in a spreadsheet: a cell
//! starting with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'`, so it is
//! never read as a formula. Pure: the HTTP answer is built by the caller.

/// Builds one CSV document row by row.
pub struct Writer {
    out: String,
}

impl Writer {
    /// A document starting with the `header` row.
    pub fn new(header: &[&str]) -> Self {
        let mut w = Self { out: String::new() };
        w.row(header);
        w
    }

    /// Appends one row.
    pub fn row(&mut self, cells: &[&str]) {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(&field(cell));
        }
        self.out.push_str("\r\n");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// One cell, neutralised against formulas, then quoted when it must be.
fn field(cell: &str) -> String {
    let safe = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    };
    if safe.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

/// A file name made of the safe characters of `name` (others become `-`), for
/// `Content-Disposition`.
pub fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches(['-', '.']);
    if trimmed.is_empty() {
        "export.csv".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_escaped_and_never_formulas() {
        let mut w = Writer::new(&["Value", "Count"]);
        w.row(&["=HYPERLINK(\"x\")", "1"]);
        w.row(&["a,b", "-2"]);
        w.row(&["line\nbreak", "@x"]);
        w.row(&["+1", "plain"]);
        assert_eq!(
            w.finish(),
            "Value,Count\r\n\"'=HYPERLINK(\"\"x\"\")\",1\r\n\"a,b\",'-2\r\n\"line\nbreak\",'@x\r\n'+1,plain\r\n"
        );
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(
            file_name("My \"Shop\"-7d-page.csv"),
            "My--Shop--7d-page.csv"
        );
        assert_eq!(file_name("ü/..\\"), "export.csv");
        assert_eq!(file_name("\"\""), "export.csv");
    }
}
