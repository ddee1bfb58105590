//! `LlmError`: why one LLM call produced no usable answer, with a stable code for decision logs.

/// Tokens the provider reported on a failed call: `(prompt, completion)`.
pub type Usage = (i64, i64);

/// Why a call produced no usable answer. Messages never carry the key, the prompt, message
/// text or the model's output.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The total timeout elapsed (or the provider's connection timed out).
    #[error("the LLM provider did not answer in time")]
    Timeout,
    /// The provider answered with a non-2xx HTTP status (429, 500, 401, …).
    #[error("the LLM provider answered with HTTP status {status}")]
    Status { status: u16 },
    /// The provider could not be reached, or the connection broke mid-answer.
    #[error("could not reach the LLM provider: {0}")]
    Transport(String),
    /// The provider answered 200 but not with what we asked for: a body that is not a chat
    /// completion, no choices, content that is not the JSON object, a missing `answer` or
    /// `confidence`, a confidence that is not a number.
    #[error("the LLM output is not the JSON answer asked for: {reason}")]
    Malformed {
        reason: String,
        /// Tokens the provider still billed for, if it said.
        usage: Option<Usage>,
    },
    /// The provider declined or failed to generate: `finish_reason` `content_filter` or
    /// `error` (OpenRouter's mid-generation failure), or a `refusal` instead of content.
    #[error("the LLM provider refused or failed to answer: {reason}")]
    Refused {
        reason: String,
        /// Tokens the provider still billed for, if it said.
        usage: Option<Usage>,
    },
    /// The tenant's target cannot even be turned into a request (a base URL that is not a
    /// URL, a key that is not a valid header value).
    #[error("the LLM target is misconfigured: {0}")]
    Config(String),
}

impl LlmError {
    /// Stable snake_case code for decision logs.
    pub fn code(&self) -> &'static str {
        match self {
            LlmError::Timeout => "llm_timeout",
            LlmError::Status { .. } => "llm_http_error",
            LlmError::Transport(_) => "llm_unreachable",
            LlmError::Malformed { .. } => "llm_malformed_output",
            LlmError::Refused { .. } => "llm_refused",
            LlmError::Config(_) => "llm_misconfigured",
        }
    }

    /// Tokens the provider reported even though the call failed (for metering), if any.
    pub fn usage(&self) -> Option<Usage> {
        match self {
            LlmError::Malformed { usage, .. } | LlmError::Refused { usage, .. } => *usage,
            _ => None,
        }
    }

    /// The provider's HTTP status, for [`LlmError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Status { status } => Some(*status),
            _ => None,
        }
    }

    pub(super) fn malformed(reason: impl Into<String>, usage: Option<Usage>) -> Self {
        LlmError::Malformed {
            reason: reason.into(),
            usage,
        }
    }

    pub(super) fn refused(reason: impl Into<String>, usage: Option<Usage>) -> Self {
        LlmError::Refused {
            reason: reason.into(),
            usage,
        }
    }
}
