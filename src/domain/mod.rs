//! Plain types and pure logic shared by every layer: identifiers, the four analytics document
//! kinds, timestamp parsing, error fingerprints, user-agent and bot detection, event drop rules,
//! segment filters, the records the use cases handle (projects, users, organizations,
//! invitations, jobs), the query parameters each analytics view takes, redirect targets, CSV,
//! and the clock port (`clock`: where "now" comes from, with a manual clock for tests).
//! Nothing here performs IO.

pub mod analytics;
pub mod audit;
pub mod clock;
pub mod csv;
pub mod demo;
pub mod drop_rules;
pub mod email;
pub mod error_groups;
pub mod error_signature;
pub mod fingerprint;
pub mod ids;
pub mod model;
pub mod params;
pub mod plausible;
pub mod records;
pub mod redirect;
pub mod segment;
pub mod timestamp;
pub mod useragent;
