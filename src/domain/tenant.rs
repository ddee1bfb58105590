//! What a tenant is made of: profile, channel account, AI config, control settings,
//! templates and training data.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::{TemplateId, TenantId, TrainingItemId};

/// A tenant's profile row.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub timezone: String,
    pub active: bool,
    /// Bumped by every change, so caches and concurrent writers can tell.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The fields of a tenant that a bundle sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantProfile {
    pub slug: String,
    pub name: String,
    pub timezone: String,
    pub active: bool,
}

/// The messaging channels parley knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Whatsapp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "whatsapp" => Some(Channel::Whatsapp),
            _ => None,
        }
    }
}

/// Names of the sealed secret fields. They are bound into each ciphertext, so they
/// must never be renamed.
pub mod secret_field {
    pub const WHATSAPP_ACCESS_TOKEN: &str = "whatsapp.access_token";
    pub const WHATSAPP_APP_SECRET: &str = "whatsapp.app_secret";
    pub const WHATSAPP_VERIFY_TOKEN: &str = "whatsapp.verify_token";
    pub const AI_API_KEY: &str = "ai.api_key";
}

/// A tenant's account on a channel (non-secret part; secrets are sealed apart).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelAccount {
    pub channel: Channel,
    /// Meta's `phone_number_id`: the routing key and the id we send from.
    pub provider_account_id: String,
    pub business_account_id: Option<String>,
    pub display_phone_number: Option<String>,
    pub token_expires_at: Option<DateTime<Utc>>,
    /// Outbound rate shaping for this number.
    pub messages_per_second: i64,
}

/// Which kind of LLM endpoint a tenant uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiProvider {
    Openai,
    Openrouter,
    Huggingface,
    /// Any OpenAI-compatible server (Ollama, vLLM, …) at `base_url`.
    Compatible,
}

impl AiProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            AiProvider::Openai => "openai",
            AiProvider::Openrouter => "openrouter",
            AiProvider::Huggingface => "huggingface",
            AiProvider::Compatible => "compatible",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "openai" => AiProvider::Openai,
            "openrouter" => AiProvider::Openrouter,
            "huggingface" => AiProvider::Huggingface,
            "compatible" => AiProvider::Compatible,
            _ => return None,
        })
    }

    /// The base URL used when the bundle gives none.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            AiProvider::Openai => Some("https://api.openai.com/v1"),
            AiProvider::Openrouter => Some("https://openrouter.ai/api/v1"),
            AiProvider::Huggingface => Some("https://router.huggingface.co/v1"),
            AiProvider::Compatible => None,
        }
    }
}

/// A tenant's LLM provider settings (the key is sealed apart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AiConfig {
    pub provider: AiProvider,
    pub base_url: String,
    pub model: String,
}

/// What happens to messages that arrive during quiet hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuietPolicy {
    Defer,
    Reply,
    AfterHoursMessage,
}

impl QuietPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            QuietPolicy::Defer => "defer",
            QuietPolicy::Reply => "reply",
            QuietPolicy::AfterHoursMessage => "after_hours_message",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "defer" => QuietPolicy::Defer,
            "reply" => QuietPolicy::Reply,
            "after_hours_message" => QuietPolicy::AfterHoursMessage,
            _ => return None,
        })
    }
}

/// Quiet hours as times of day in the tenant's time zone; may span midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub policy: QuietPolicy,
}

/// The default escalation categories.
pub fn default_escalation_categories() -> Vec<String> {
    ["refund", "complaint", "emergency"]
        .into_iter()
        .map(String::from)
        .collect()
}

/// The default text sent when the bot is not confident enough to answer.
pub const DEFAULT_FALLBACK_TEXT: &str =
    "Thanks for your message! A member of our team will get back to you shortly.";

/// The default confidence threshold (see README, "FAQ matching").
pub const DEFAULT_CONFIDENCE_THRESHOLD: f64 = 0.5;

/// One row of control settings per tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlSettings {
    pub bot_enabled: bool,
    pub auto_reply: bool,
    pub ai_responses: bool,
    pub confidence_threshold: f64,
    pub fallback_text: String,
    /// Reply to images, audio and other non-text messages; `None` = stay silent.
    pub non_text_reply: Option<String>,
    pub quiet_hours: Option<QuietHours>,
    pub response_delay_seconds: i64,
    /// `None` = unlimited.
    pub max_messages_per_hour: Option<i64>,
    /// `None` = unlimited.
    pub max_messages_per_user_per_day: Option<i64>,
    pub escalation_categories: Vec<String>,
    pub escalation_phone: Option<String>,
    pub escalation_email: Option<String>,
    /// Keep message text in the message log (off = only metadata).
    pub log_message_text: bool,
    /// Record a decision with its reason for every message.
    pub log_decisions: bool,
    /// A conversation handed to a person goes back to the bot after this many idle
    /// minutes; `None` = only when an admin releases it.
    pub handoff_idle_minutes: Option<i64>,
    /// Messages of one customer arriving within this many seconds are answered together.
    pub burst_window_seconds: i64,
    /// The notice sent once per conversation per night (policy `after_hours_message`).
    pub after_hours_text: Option<String>,
    /// What the customer is told when the conversation goes to a person.
    pub escalation_ack_text: Option<String>,
    /// LLM tokens (in + out) a tenant may use per calendar month; `None` = unlimited.
    pub llm_monthly_token_budget: Option<i64>,
    /// The approved WhatsApp template used outside the 24-hour window.
    pub window_template: Option<WindowTemplate>,
}

/// An approved WhatsApp message template with one body parameter, which receives the
/// text parley would have sent (see README, "The 24-hour window").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowTemplate {
    pub name: String,
    pub language: String,
}

/// The default notice for messages that arrive during quiet hours.
pub const DEFAULT_AFTER_HOURS_TEXT: &str = "Thanks for your message! We are closed right now; \
    we will answer when we open again.";

/// The default acknowledgement when a conversation goes to a person.
pub const DEFAULT_ESCALATION_ACK_TEXT: &str =
    "Thank you. I have passed your message to a member of our team, who will reply here shortly.";

/// The default idle time after which a handed-off conversation returns to the bot.
pub const DEFAULT_HANDOFF_IDLE_MINUTES: i64 = 240;

impl ControlSettings {
    pub fn after_hours_text(&self) -> &str {
        self.after_hours_text
            .as_deref()
            .unwrap_or(DEFAULT_AFTER_HOURS_TEXT)
    }

    pub fn escalation_ack_text(&self) -> &str {
        self.escalation_ack_text
            .as_deref()
            .unwrap_or(DEFAULT_ESCALATION_ACK_TEXT)
    }
}

impl Default for ControlSettings {
    fn default() -> Self {
        Self {
            bot_enabled: true,
            auto_reply: true,
            ai_responses: true,
            confidence_threshold: DEFAULT_CONFIDENCE_THRESHOLD,
            fallback_text: DEFAULT_FALLBACK_TEXT.into(),
            non_text_reply: None,
            quiet_hours: None,
            response_delay_seconds: 0,
            max_messages_per_hour: None,
            max_messages_per_user_per_day: None,
            escalation_categories: default_escalation_categories(),
            escalation_phone: None,
            escalation_email: None,
            log_message_text: true,
            log_decisions: true,
            handoff_idle_minutes: Some(DEFAULT_HANDOFF_IDLE_MINUTES),
            burst_window_seconds: 0,
            after_hours_text: None,
            escalation_ack_text: None,
            llm_monthly_token_budget: None,
            window_template: None,
        }
    }
}

/// A prompt template of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub id: TemplateId,
    pub name: String,
    pub system_prompt: String,
    pub tone: Option<String>,
    pub max_response_length: Option<i64>,
    /// Earlier messages of the conversation given to the LLM (default 12).
    pub context_messages: Option<i64>,
    pub is_default: bool,
    pub position: i64,
}

/// What a training item is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingKind {
    Faq,
    CannedReply,
    Example,
}

impl TrainingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrainingKind::Faq => "faq",
            TrainingKind::CannedReply => "canned_reply",
            TrainingKind::Example => "example",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "faq" => TrainingKind::Faq,
            "canned_reply" => TrainingKind::CannedReply,
            "example" => TrainingKind::Example,
            _ => return None,
        })
    }
}

/// One FAQ, canned reply or example of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainingItem {
    pub id: TrainingItemId,
    pub kind: TrainingKind,
    pub question: String,
    pub answer: String,
    pub examples: Vec<String>,
    pub category: Option<String>,
    pub priority: i64,
    pub active: bool,
    pub position: i64,
}
