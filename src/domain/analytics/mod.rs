//! The analytics math of SuperInsights 1.x as pure types and functions, one concern per file:
//! timeframes and day ranges ([`periods`]), web vitals and the performance score ([`vitals`]),
//! the dashboard's figures ([`figures`]), page-view breakdowns ([`breakdowns`]), and the
//! drill-downs' filters and reports ([`traffic`], [`diagnostics`]), and the answer of a view
//! still being computed ([`pending`]). Everything is re-exported here, so callers name
//! `domain::analytics::X` whichever file holds it.

use serde::{Deserialize, Serialize};

pub mod breakdowns;
pub mod diagnostics;
pub mod figures;
pub mod pending;
pub mod periods;
pub mod traffic;
pub mod vitals;

pub use breakdowns::*;
pub use diagnostics::*;
pub use figures::*;
pub use pending::*;
pub use periods::*;
pub use traffic::*;
pub use vitals::*;
