//! A non-streaming chat-completions client for any OpenAI-compatible endpoint (OpenRouter,
//! OpenAI, a local server). One request, one answer; every failure is one [`AiError`].

use crate::config::AiConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How much of an error body is kept in the message (enough to read the provider's reason).
const EXCERPT_CHARS: usize = 300;

/// Everything that can go wrong talking to the provider.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AiError {
    /// No answer within `AI_ANALYSIS_TIMEOUT_MS`.
    #[error("the AI provider did not answer within {0} ms")]
    Timeout(u64),
    /// The provider answered with a non-2xx status; `excerpt` is the start of its body.
    #[error("the AI provider answered HTTP {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
    /// A 2xx answer that is not a chat completion with text in it.
    #[error("the AI provider's answer is not a usable chat completion: {0}")]
    Malformed(String),
    /// Connection refused, DNS, TLS, reset…
    #[error("the AI provider cannot be reached: {0}")]
    Transport(String),
}

/// One chat message (`system`, `user` or `assistant`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// The model's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The first choice's message text.
    pub content: String,
    /// The model that answered (the provider's `model`, else the one asked for).
    pub model: String,
    /// The provider's `usage` object as sent (token counts), when present.
    pub usage: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    temperature: f64,
    max_tokens: u32,
    stream: bool,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<AnswerMessage>,
}

#[derive(Deserialize)]
struct AnswerMessage {
    content: Option<String>,
}

/// The configured provider. Cheap to clone (one shared connection pool).
#[derive(Clone, Debug)]
pub struct ChatClient {
    http: reqwest::Client,
    config: AiConfig,
}

impl ChatClient {
    /// A client for the configured provider, `None` when no API key is set (the caller then
    /// writes the offline digest instead).
    pub fn from_config(config: &AiConfig) -> Option<Self> {
        if config.api_key.is_empty() {
            return None;
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(10_000)))
            .user_agent(concat!("superinsights/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok()?;
        Some(Self {
            http,
            config: config.clone(),
        })
    }

    /// The model runs ask for.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// Sends `messages` to `{base_url}/chat/completions` and returns the first choice's text.
    /// The whole exchange (connect, send, read the body) is bounded by the configured timeout.
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<Completion, AiError> {
        let limit = Duration::from_millis(self.config.timeout_ms);
        match tokio::time::timeout(limit, self.exchange(messages)).await {
            Ok(result) => result,
            Err(_) => Err(AiError::Timeout(self.config.timeout_ms)),
        }
    }

    async fn exchange(&self, messages: &[ChatMessage]) -> Result<Completion, AiError> {
        let url = format!("{}/chat/completions", self.config.base_url);
        let body = Request {
            model: &self.config.model,
            messages,
            temperature: self.config.temperature,
            max_tokens: self.config.max_tokens,
            stream: false,
        };
        let timeout_ms = self.config.timeout_ms;
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                AiError::Timeout(timeout_ms)
            } else {
                AiError::Transport(e.without_url().to_string())
            }
        };
        let response = self
            .http
            .post(url)
            .bearer_auth(self.config.api_key.expose())
            .header("X-Title", "SuperInsights")
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(AiError::Status {
                status: status.as_u16(),
                excerpt: excerpt(&text),
            });
        }
        let parsed: Response = serde_json::from_str(&text)
            .map_err(|e| AiError::Malformed(format!("{e}; body starts {:?}", excerpt(&text))))?;
        let content = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message)
            .and_then(|m| m.content)
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| AiError::Malformed("no message text in the first choice".into()))?;
        Ok(Completion {
            content,
            model: parsed
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| self.config.model.clone()),
            usage: parsed.usage,
        })
    }
}

/// The first [`EXCERPT_CHARS`] characters of a body, on one line.
fn excerpt(body: &str) -> String {
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect();
    flat.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_means_no_client() {
        assert!(ChatClient::from_config(&AiConfig::default()).is_none());
    }

    #[test]
    fn excerpts_are_short_and_single_line() {
        let body = format!("line1\nline2 {}", "x".repeat(1000));
        let e = excerpt(&body);
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(!e.contains('\n'));
    }
}
