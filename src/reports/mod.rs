//! Generated reports (reference §5.7) and filter templates (§5.8), engine side: the records
//! ([`model`]), request validation with 1.x's error codes ([`request`]), the report context built
//! from the analytics reads ([`context`]), the renderers (CSV, JSON, HTML with inline SVG charts,
//! PDF) and the file-store port the finished files go to ([`files`]: a local directory, or an
//! S3-compatible bucket, [`s3_files`]).
//!
//! No HTTP and no job-queue types here: `services::report_jobs` drives generation and
//! `http::report_routes` serves it. (The page-view and event *drill-downs* live in
//! `services::drill_downs`; they are not these reports.)

pub mod charts;
pub mod context;
pub mod files;
#[cfg(test)]
pub(crate) mod files_contract;
pub mod model;
pub mod render_csv;
pub mod render_html;
pub mod render_pdf;
pub mod request;
pub mod s3_files;

pub use model::{
    CsvMode, DataType, FilterTemplate, Report, ReportFormat, ReportStatus, Stage, StageRecord,
};
