//! The AI-analysis provider settings (`OPENROUTER_*`/`OPENAI_*`, `AI_ANALYSIS_*`).

use super::{ConfigError, Env, Secret};

/// The AI-analysis provider: any OpenAI-compatible chat-completions endpoint. With no key the
/// feature still works and writes a statistical digest instead (see `docs/features/ai-analysis.md`).
#[derive(Clone, Debug)]
pub struct AiConfig {
    /// `OPENROUTER_BASE_URL`, else `OPENAI_BASE_URL`, else `https://openrouter.ai/api/v1`; no
    /// trailing slash.
    pub base_url: String,
    /// `OPENROUTER_API_KEY`, else `OPENAI_API_KEY`; empty means "no model: write the digest".
    pub api_key: Secret,
    /// `AI_ANALYSIS_MODEL` (default `google/gemini-2.5-flash-lite`).
    pub model: String,
    /// `AI_ANALYSIS_TEMPERATURE` (0.2; 0–2).
    pub temperature: f64,
    /// `AI_ANALYSIS_MAX_TOKENS` (900; 1–32000).
    pub max_tokens: u32,
    /// `AI_ANALYSIS_TIMEOUT_MS` (25000; 1–600000): the whole provider call is abandoned after it.
    pub timeout_ms: u64,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://openrouter.ai/api/v1".into(),
            api_key: Secret::default(),
            model: "google/gemini-2.5-flash-lite".into(),
            temperature: 0.2,
            max_tokens: 900,
            timeout_ms: 25_000,
        }
    }
}

impl AiConfig {
    pub(super) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let (url_var, base_url) = match (
            env.string("OPENROUTER_BASE_URL"),
            env.string("OPENAI_BASE_URL"),
        ) {
            (Some(u), _) => ("OPENROUTER_BASE_URL", u),
            (None, Some(u)) => ("OPENAI_BASE_URL", u),
            (None, None) => ("OPENROUTER_BASE_URL", d.base_url.clone()),
        };
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError::new(
                url_var,
                "must start with https:// or http://",
            ));
        }
        let temperature: f64 = env.number("AI_ANALYSIS_TEMPERATURE", d.temperature)?;
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ConfigError::new(
                "AI_ANALYSIS_TEMPERATURE",
                "must be between 0 and 2",
            ));
        }
        let max_tokens: u32 = env.number("AI_ANALYSIS_MAX_TOKENS", d.max_tokens)?;
        if !(1..=32_000).contains(&max_tokens) {
            return Err(ConfigError::new(
                "AI_ANALYSIS_MAX_TOKENS",
                "must be between 1 and 32000",
            ));
        }
        let timeout_ms: u64 = env.number("AI_ANALYSIS_TIMEOUT_MS", d.timeout_ms)?;
        if !(1..=600_000).contains(&timeout_ms) {
            return Err(ConfigError::new(
                "AI_ANALYSIS_TIMEOUT_MS",
                "must be between 1 and 600000",
            ));
        }
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: Secret::new(
                env.string("OPENROUTER_API_KEY")
                    .or_else(|| env.string("OPENAI_API_KEY"))
                    .unwrap_or_default(),
            ),
            model: env.string("AI_ANALYSIS_MODEL").unwrap_or(d.model),
            temperature,
            max_tokens,
            timeout_ms,
        })
    }
}
