//! The analytics engine's backend-independent parts: range planning and exact rollup
//! aggregates with their encoding. Stores scan raw rows and keep blobs; the math is here, once.
//! (Issue 12 moves the remaining summaries here and gives MongoDB the same rollups.)

pub mod plan;
pub mod rollup;
