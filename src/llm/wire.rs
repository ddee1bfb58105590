//! What goes over the wire: the tenant's async-openai config, the request body, a lenient
//! response type, the single-attempt HTTP service and the mapping of transport errors.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest, ResponseFormat,
};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::{LlmError, LlmRequest, LlmTarget};
use crate::domain::AiProvider;

/// Low, so the same question gets the same answer; the JSON shape holds better too.
const TEMPERATURE: f32 = 0.2;

/// async-openai configuration for one tenant's call.
///
/// Not `OpenAIConfig`: its constructor (`new`/`default`) reads `OPENAI_API_KEY`,
/// `OPENAI_BASE_URL`, `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID` from the environment (the last
/// two would be sent to every tenant's provider as headers unless overwritten), and it
/// always sends `Authorization: Bearer …`, even with no key.
pub(super) struct TenantConfig {
    api_base: String,
    api_key: SecretString,
    headers: HeaderMap,
}

impl TenantConfig {
    pub(super) fn new(target: &LlmTarget<'_>) -> Result<Self, LlmError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = target.api_key {
            let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose_secret()))
                .map_err(|_| LlmError::Config("the API key is not a valid HTTP header".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if target.provider == AiProvider::Openrouter {
            // OpenRouter's app attribution headers; other providers would ignore them.
            headers.insert(
                HeaderName::from_static("http-referer"),
                HeaderValue::from_static("https://github.com/parley"),
            );
            headers.insert(
                HeaderName::from_static("x-title"),
                HeaderValue::from_static("parley"),
            );
        }
        Ok(Self {
            api_base: target.base_url.trim_end_matches('/').to_owned(),
            api_key: target
                .api_key
                .cloned()
                .unwrap_or_else(|| SecretString::from(String::new())),
            headers,
        })
    }
}

impl Config for TenantConfig {
    fn headers(&self) -> HeaderMap {
        self.headers.clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.api_base, path)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    fn api_base(&self) -> &str {
        &self.api_base
    }

    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}

/// The `/chat/completions` body: system prompt, then the history as user/assistant turns,
/// asking for a JSON object (`json_object` is the format OpenAI, OpenRouter, the Hugging Face
/// router and Ollama all accept).
#[allow(deprecated)] // `max_tokens`: deprecated by OpenAI, still the field everyone else reads
pub(super) fn chat_request(
    target: &LlmTarget<'_>,
    req: &LlmRequest,
) -> CreateChatCompletionRequest {
    let mut messages: Vec<ChatCompletionRequestMessage> = Vec::with_capacity(req.history.len() + 1);
    messages.push(ChatCompletionRequestSystemMessage::from(req.system_prompt.as_str()).into());
    for turn in &req.history {
        messages.push(if turn.from_customer {
            ChatCompletionRequestUserMessage::from(turn.text.as_str()).into()
        } else {
            ChatCompletionRequestAssistantMessage::from(turn.text.as_str()).into()
        });
    }
    // OpenAI's newer models reject `max_tokens`; the other routers and servers may not know
    // `max_completion_tokens` yet.
    let (max_tokens, max_completion_tokens) = match target.provider {
        AiProvider::Openai => (None, req.max_output_tokens),
        _ => (req.max_output_tokens, None),
    };
    CreateChatCompletionRequest {
        model: target.model.to_owned(),
        messages,
        response_format: Some(ResponseFormat::JsonObject),
        temperature: Some(TEMPERATURE),
        max_tokens,
        max_completion_tokens,
        ..Default::default()
    }
}

/// The parts of a chat completion we read, typed loosely: OpenRouter sends
/// `finish_reason: "error"`, TGI sends `eos_token`, some servers omit `usage` or send
/// floats, and async-openai's typed response rejects all of those.
#[derive(Debug, Deserialize)]
pub(super) struct ChatResponse {
    pub choices: Option<Vec<Choice>>,
    pub usage: Option<Value>,
    /// A 200 carrying an error object instead of choices (some routers do this).
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Choice {
    pub message: Option<Message>,
    pub finish_reason: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Message {
    /// A string, or (some servers) an array of `{"type": "text", "text": …}` parts.
    pub content: Option<Value>,
    pub refusal: Option<Value>,
}

/// The provider answered with a non-2xx status; its body is not read (it can echo a
/// partly masked key and is not needed).
#[derive(Debug)]
struct HttpStatus(u16);

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP status {}", self.0)
    }
}

impl std::error::Error for HttpStatus {}

/// The HTTP service handed to async-openai in place of its default one, which wraps every
/// call in `OpenAIRetryLayer` (3 retries on 429/5xx/connect errors, with backoff). This one
/// sends each request exactly once and turns any non-2xx status into an error itself.
#[derive(Clone)]
pub(super) struct SingleAttempt {
    http: reqwest::Client,
}

impl SingleAttempt {
    pub(super) fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

impl tower::Service<HttpRequestFactory> for SingleAttempt {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = http.execute(request).await?;
            let status = response.status();
            tracing::debug!(status = status.as_u16(), "llm provider responded");
            if status.is_success() {
                Ok(response)
            } else {
                Err(OpenAIError::Boxed(Box::new(HttpStatus(status.as_u16()))))
            }
        })
    }
}

/// Maps async-openai's error to ours without keeping any response body text.
pub(super) fn classify_error(error: OpenAIError) -> LlmError {
    match error {
        OpenAIError::Boxed(inner) => match inner.downcast::<HttpStatus>() {
            Ok(status) => LlmError::Status { status: status.0 },
            Err(other) => match other.downcast::<reqwest::Error>() {
                Ok(error) => classify_reqwest(*error),
                Err(other) => LlmError::Transport(error_chain(&*other)),
            },
        },
        OpenAIError::Reqwest(error) => classify_reqwest(error),
        OpenAIError::ApiError(api) => LlmError::Status {
            status: api.status_code.as_u16(),
        },
        // The serde error's position only: its message can quote the body.
        OpenAIError::JSONDeserialize(error, _body) => LlmError::malformed(
            format!(
                "the response body is not a chat completion ({:?} error at line {}, column {})",
                error.classify(),
                error.line(),
                error.column()
            ),
            None,
        ),
        OpenAIError::InvalidArgument(reason) => LlmError::Config(reason),
        other => LlmError::Transport(other.to_string()),
    }
}

fn classify_reqwest(error: reqwest::Error) -> LlmError {
    if error.is_timeout() {
        return LlmError::Timeout;
    }
    let error = error.without_url();
    if error.is_builder() {
        LlmError::Config(format!(
            "the request cannot be built: {}",
            error_chain(&error)
        ))
    } else {
        LlmError::Transport(error_chain(&error))
    }
}

/// `error: cause: cause`, as reqwest's own message says little ("error sending request").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
