//! Messages as parley sees them, whatever the channel: inbound events parsed from a
//! provider webhook, delivery statuses, and the classification of send errors.

use serde::{Deserialize, Serialize};

/// What kind of message a customer sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    /// A tap on one of our reply buttons or list rows (`interactive.button_reply` / `list_reply`).
    Interactive,
    /// A tap on a template quick-reply button (`type: button`).
    Button,
    Image,
    Audio,
    Video,
    Document,
    Sticker,
    Location,
    Contacts,
    Reaction,
    /// Meta's `unsupported` type (the customer must resend).
    Unsupported,
    /// Any type parley does not know yet; kept with its name, never dropped.
    Other(String),
}

impl MessageKind {
    /// The provider's name for the kind (`"text"`, `"image"`, …).
    pub fn as_str(&self) -> &str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Interactive => "interactive",
            MessageKind::Button => "button",
            MessageKind::Image => "image",
            MessageKind::Audio => "audio",
            MessageKind::Video => "video",
            MessageKind::Document => "document",
            MessageKind::Sticker => "sticker",
            MessageKind::Location => "location",
            MessageKind::Contacts => "contacts",
            MessageKind::Reaction => "reaction",
            MessageKind::Unsupported => "unsupported",
            MessageKind::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "text" => MessageKind::Text,
            "interactive" => MessageKind::Interactive,
            "button" => MessageKind::Button,
            "image" => MessageKind::Image,
            "audio" => MessageKind::Audio,
            "video" => MessageKind::Video,
            "document" => MessageKind::Document,
            "sticker" => MessageKind::Sticker,
            "location" => MessageKind::Location,
            "contacts" => MessageKind::Contacts,
            "reaction" => MessageKind::Reaction,
            "unsupported" => MessageKind::Unsupported,
            other => MessageKind::Other(other.to_string()),
        }
    }

    /// Whether the bot can answer it from text (a typed message or a tapped reply).
    pub fn is_textual(&self) -> bool {
        matches!(
            self,
            MessageKind::Text | MessageKind::Interactive | MessageKind::Button
        )
    }
}

/// An attachment's reference (the file itself stays at the provider).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub id: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
}

/// One message from a customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The provider's id for the message (Meta's wamid): the dedupe key.
    pub provider_message_id: String,
    /// The business account the message was sent to (Meta's phone_number_id).
    pub provider_account_id: String,
    /// The stable customer key: the business-scoped user id when Meta sends one,
    /// else the WhatsApp id (`wa_id` / `from`).
    pub customer_id: String,
    /// The customer's WhatsApp id / phone digits, when the provider sends it.
    pub customer_phone: Option<String>,
    /// Meta's business-scoped user id (BSUID), when sent.
    pub customer_user_id: Option<String>,
    pub customer_name: Option<String>,
    /// Unix seconds, as the provider stamped it.
    pub timestamp: i64,
    pub kind: MessageKind,
    /// What the bot reads: a text body, a tapped button/row title, or a media caption.
    pub text: Option<String>,
    /// The id of a tapped reply button/row, or a template button's payload.
    pub reply_id: Option<String>,
    pub media: Option<Media>,
    /// The message this one replies to or reacts to.
    pub context_message_id: Option<String>,
    /// The provider's JSON for this message, kept whole so nothing is ever dropped;
    /// null for a plain text message (only `PLAIN_TEXT_KEYS`, a `text` of only its
    /// body), whose columns say all of it.
    pub raw: serde_json::Value,
}

/// The keys of a plain text message's provider JSON (WhatsApp's `messages[]` item).
pub const PLAIN_TEXT_KEYS: [&str; 6] = ["from", "from_user_id", "id", "timestamp", "type", "text"];

/// Delivery state of a message we sent, in the order it can only move forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Meta's status names; `played` (a voice message) counts as read.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => DeliveryStatus::Queued,
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" | "played" => DeliveryStatus::Read,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

/// A provider error attached to a status, a message or a webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub code: i64,
    pub title: Option<String>,
    pub details: Option<String>,
}

/// A delivery status for a message we sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The provider's id of our outbound message (from the send response).
    pub provider_message_id: String,
    pub provider_account_id: String,
    /// Meta's name as sent (`sent`, `delivered`, `read`, `failed`, `played`, …).
    pub status: String,
    pub timestamp: i64,
    pub recipient_id: Option<String>,
    pub errors: Vec<ProviderError>,
    /// Our own data echoed back (`biz_opaque_callback_data`).
    pub callback_data: Option<String>,
}

/// Everything one webhook delivery carried, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebhookBatch {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// Errors reported at the webhook/app level (`value.errors`), with the account.
    pub errors: Vec<(String, ProviderError)>,
    /// Messages the business itself sent from the WhatsApp app (`smb_message_echoes`):
    /// a person is answering, so the bot pauses.
    pub echoes: Vec<BusinessEcho>,
}

/// A message the business sent from its own WhatsApp app, as Meta echoes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusinessEcho {
    /// The business's phone_number_id.
    pub account: String,
    /// The customer it went to (same key rule as inbound customer ids).
    pub customer_id: String,
    pub provider_message_id: Option<String>,
    pub text: Option<String>,
    /// Unix seconds; 0 when missing.
    pub timestamp: i64,
}

/// What to do after a failed send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// Worth trying again after a backoff (throttling, 5xx, timeouts).
    Retryable,
    /// Retry only after Meta's pair-rate backoff (4^n seconds).
    PairRateLimited,
    /// Never retry; record the error.
    Permanent,
    /// The tenant's token is expired or revoked (Meta 190, 0): never retry, flag the tenant.
    TokenExpired,
}
