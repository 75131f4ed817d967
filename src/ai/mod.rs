//! AI analysis without IO of its own beyond the provider call: the OpenAI-compatible client
//! (`client`), the fixed instructions and the payload shape sent to the model (`prompt`), the
//! statistical digest written when no model is configured (`digest`), presets and their
//! validation (`presets`), and sanitised Markdown rendering (`render`).
//!
//! Must not read the store: the payload is built by `services::ai_analysis` and handed in.

pub mod client;
pub mod digest;
pub mod model;
pub mod presets;
pub mod prompt;
pub mod render;

pub use client::{AiError, ChatClient, ChatMessage, Completion};
