//! The LLM client: one structured chat completion for one tenant's provider, on async-openai.
//!
//! Every provider (OpenAI, OpenRouter, the Hugging Face router, Ollama and other
//! OpenAI-compatible servers) is spoken to through the same `/chat/completions` call. The
//! key and base URL come from the tenant, never from the environment; a call is made exactly
//! once (no hidden retries) and never outlives the client's total timeout.

mod answer;
mod error;
mod wire;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use async_openai::Client;
use secrecy::SecretString;

use crate::domain::AiProvider;

pub use error::LlmError;

/// One shared HTTP client for every tenant's LLM calls.
///
/// Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    total_timeout: Duration,
}

/// Where one call goes: a tenant's provider, already resolved.
#[derive(Clone, Copy)]
pub struct LlmTarget<'a> {
    pub provider: AiProvider,
    /// Base URL the `/chat/completions` path is appended to, e.g.
    /// `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: &'a str,
    pub model: &'a str,
    /// `None` sends no `Authorization` header (a local Ollama, for instance).
    pub api_key: Option<&'a SecretString>,
}

impl std::fmt::Debug for LlmTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmTarget")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.map(|_| "[redacted]"))
            .finish()
    }
}

/// What to ask: the rendered system prompt and the conversation so far.
#[derive(Clone)]
pub struct LlmRequest {
    /// Already rendered; sent as the system message, unchanged. It must ask for the JSON
    /// object `{"answer", "confidence", "category", "needs_human"}`.
    pub system_prompt: String,
    /// Oldest first; the last turn is the customer's message being answered.
    pub history: Vec<ChatTurn>,
    pub max_output_tokens: Option<u32>,
}

impl std::fmt::Debug for LlmRequest {
    // Prompts and message text never reach a log by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmRequest")
            .field("system_prompt_len", &self.system_prompt.len())
            .field("history_turns", &self.history.len())
            .field("max_output_tokens", &self.max_output_tokens)
            .finish()
    }
}

/// One message of the conversation: the customer's (`user`) or ours, bot or human
/// (`assistant`).
#[derive(Clone, PartialEq, Eq)]
pub struct ChatTurn {
    pub from_customer: bool,
    pub text: String,
}

impl std::fmt::Debug for ChatTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTurn")
            .field("from_customer", &self.from_customer)
            .field("text_len", &self.text.len())
            .finish()
    }
}

/// The model's structured answer, checked and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmAnswer {
    pub answer: String,
    /// Clamped to `0.0..=1.0`.
    pub confidence: f64,
    /// Lowercased and trimmed; `None` when empty, `"none"` or null.
    pub category: Option<String>,
    pub needs_human: bool,
    /// `usage.prompt_tokens`, 0 when the provider did not report it.
    pub tokens_in: i64,
    /// `usage.completion_tokens`, 0 when the provider did not report it.
    pub tokens_out: i64,
}

impl LlmClient {
    /// Builds the shared client. `total_timeout` bounds every [`LlmClient::complete`] call
    /// from start to parsed answer.
    ///
    /// # Panics
    ///
    /// If the TLS backend cannot be initialised (as `reqwest::Client::new` does).
    pub fn new(connect_timeout: Duration, total_timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(total_timeout)
            // A redirect would turn the POST into a GET; a tenant's base URL that redirects
            // is a configuration error worth seeing as one.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("building the LLM HTTP client");
        Self {
            http,
            total_timeout,
        }
    }

    /// One structured completion for one tenant.
    ///
    /// Never retries by itself (a 429 or 500 comes back as [`LlmError::Status`] at once; the
    /// caller owns retry policy) and never takes longer than the total timeout
    /// ([`LlmError::Timeout`]).
    pub async fn complete(
        &self,
        target: &LlmTarget<'_>,
        req: &LlmRequest,
    ) -> Result<LlmAnswer, LlmError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.total_timeout, self.call_once(target, req))
            .await
            .unwrap_or(Err(LlmError::Timeout));
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(answer) => tracing::debug!(
                provider = target.provider.as_str(),
                model = target.model,
                latency_ms,
                tokens_in = answer.tokens_in,
                tokens_out = answer.tokens_out,
                "llm call answered"
            ),
            Err(error) => tracing::debug!(
                provider = target.provider.as_str(),
                model = target.model,
                latency_ms,
                code = error.code(),
                status = error.status(),
                "llm call failed"
            ),
        }
        result
    }

    async fn call_once(
        &self,
        target: &LlmTarget<'_>,
        req: &LlmRequest,
    ) -> Result<LlmAnswer, LlmError> {
        let config = wire::TenantConfig::new(target)?;
        // `Client::build` alone would install async-openai's default executor, which retries
        // 429/5xx/connect errors up to 3 times with backoff; our service sends exactly once.
        let client = Client::build(self.http.clone(), config)
            .with_http_service(wire::SingleAttempt::new(self.http.clone()));
        let body = wire::chat_request(target, req);
        let response: wire::ChatResponse = client
            .chat()
            .create_byot(&body)
            .await
            .map_err(wire::classify_error)?;
        answer::from_response(response)
    }
}
