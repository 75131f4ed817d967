//! Generated reports: the file store (`REPORTS_DIR`, `REPORTS_S3_*`), the PDF font and the
//! generation timeout.

use super::{ConfigError, Env, s3};
use std::path::PathBuf;

/// Generated reports (`docs/features/reports.md`).
#[derive(Clone, Debug)]
pub struct ReportsConfig {
    /// `REPORTS_DIR` (default `DATA_DIR/reports`): the local file store of report files.
    pub dir: PathBuf,
    /// `REPORT_PDF_FONT`: a TrueType font embedded in PDFs (default DejaVu Sans where installed,
    /// `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`). Without one, PDFs use the built-in
    /// Helvetica, which shows only Latin-1 text (other characters become `?`).
    pub pdf_font: Option<PathBuf>,
    /// `REPORT_TIMEOUT_MS` (300000; 1000–3600000): a generation not finished this long after it
    /// was asked for is failed, naming the stage it was in.
    pub timeout_ms: u64,
    /// `REPORTS_S3_*`: the S3-compatible bucket report files go to instead of `dir` (which then
    /// only holds files being written); `None`: the local directory.
    pub s3: Option<s3::S3Config>,
}

/// Where Debian's `fonts-dejavu-core` puts DejaVu Sans.
pub const DEFAULT_PDF_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

impl ReportsConfig {
    pub(super) fn from_env(env: &Env, data_dir: &std::path::Path) -> Result<Self, ConfigError> {
        let pdf_font = match env.string("REPORT_PDF_FONT") {
            Some(p) if p == "builtin" => None,
            Some(p) => Some(PathBuf::from(p)),
            None => Some(PathBuf::from(DEFAULT_PDF_FONT)).filter(|p| p.exists()),
        };
        Ok(Self {
            dir: env
                .string("REPORTS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("reports")),
            pdf_font,
            timeout_ms: env.number_in("REPORT_TIMEOUT_MS", 300_000, 1_000, 3_600_000)?,
            s3: s3::from_env(env)?,
        })
    }
}
