//! The analytics engine's backend-independent parts: range planning, exact rollup aggregates
//! with their encoding and the one fold of raw documents into them, and the summaries computed
//! from them. Stores scan raw rows and keep blobs; the math is here, once.
//! (Issue 12 moves the remaining summaries here and gives MongoDB the same rollups.)

pub mod engine;
pub mod plan;
pub mod rollup;
pub mod series;
pub mod summaries;
