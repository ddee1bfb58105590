//! Row types shared by both backends, and their conversion to domain types. The same
//! Rust types map to native columns on each database (UUID/BLOB, TIMESTAMPTZ/TEXT, …).

use chrono::{DateTime, NaiveTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{SecretRecord, StoreError};
use crate::crypto::Sealed;
use crate::domain::*;

#[derive(sqlx::FromRow)]
pub struct TenantRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub timezone: String,
    pub active: bool,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Tenant {
            id: TenantId(r.id),
            slug: r.slug,
            name: r.name,
            timezone: r.timezone,
            active: r.active,
            revision: r.revision,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn bad(what: &str, value: &str) -> StoreError {
    StoreError::Other(format!("unexpected {what} {value:?} in the database"))
}

#[derive(sqlx::FromRow)]
pub struct ChannelAccountRow {
    pub channel: String,
    pub provider_account_id: String,
    pub business_account_id: Option<String>,
    pub display_phone_number: Option<String>,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub messages_per_second: i64,
}

impl TryFrom<ChannelAccountRow> for ChannelAccount {
    type Error = StoreError;
    fn try_from(r: ChannelAccountRow) -> Result<Self, StoreError> {
        Ok(ChannelAccount {
            channel: Channel::parse(&r.channel).ok_or_else(|| bad("channel", &r.channel))?,
            provider_account_id: r.provider_account_id,
            business_account_id: r.business_account_id,
            display_phone_number: r.display_phone_number,
            token_expires_at: r.token_expires_at,
            messages_per_second: r.messages_per_second,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct AiConfigRow {
    pub provider: String,
    pub base_url: String,
    pub model: String,
}

impl TryFrom<AiConfigRow> for AiConfig {
    type Error = StoreError;
    fn try_from(r: AiConfigRow) -> Result<Self, StoreError> {
        Ok(AiConfig {
            provider: AiProvider::parse(&r.provider).ok_or_else(|| bad("provider", &r.provider))?,
            base_url: r.base_url,
            model: r.model,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SettingsRow {
    pub bot_enabled: bool,
    pub auto_reply: bool,
    pub ai_responses: bool,
    pub confidence_threshold: f64,
    pub fallback_text: String,
    pub non_text_reply: Option<String>,
    pub quiet_hours_start: Option<NaiveTime>,
    pub quiet_hours_end: Option<NaiveTime>,
    pub quiet_hours_policy: Option<String>,
    pub response_delay_seconds: i64,
    pub max_messages_per_hour: Option<i64>,
    pub max_messages_per_user_per_day: Option<i64>,
    pub escalation_categories: Json<Vec<String>>,
    pub escalation_phone: Option<String>,
    pub escalation_email: Option<String>,
    pub log_message_text: bool,
    pub log_decisions: bool,
    pub handoff_idle_minutes: Option<i64>,
    pub burst_window_seconds: i64,
    pub after_hours_text: Option<String>,
    pub escalation_ack_text: Option<String>,
    pub llm_monthly_token_budget: Option<i64>,
    pub window_template_name: Option<String>,
    pub window_template_language: Option<String>,
}

impl TryFrom<SettingsRow> for ControlSettings {
    type Error = StoreError;
    fn try_from(r: SettingsRow) -> Result<Self, StoreError> {
        let quiet_hours = match (r.quiet_hours_start, r.quiet_hours_end, r.quiet_hours_policy) {
            (Some(start), Some(end), Some(p)) => Some(QuietHours {
                start,
                end,
                policy: QuietPolicy::parse(&p).ok_or_else(|| bad("quiet hours policy", &p))?,
            }),
            _ => None,
        };
        Ok(ControlSettings {
            bot_enabled: r.bot_enabled,
            auto_reply: r.auto_reply,
            ai_responses: r.ai_responses,
            confidence_threshold: r.confidence_threshold,
            fallback_text: r.fallback_text,
            non_text_reply: r.non_text_reply,
            quiet_hours,
            response_delay_seconds: r.response_delay_seconds,
            max_messages_per_hour: r.max_messages_per_hour,
            max_messages_per_user_per_day: r.max_messages_per_user_per_day,
            escalation_categories: r.escalation_categories.0,
            escalation_phone: r.escalation_phone,
            escalation_email: r.escalation_email,
            log_message_text: r.log_message_text,
            log_decisions: r.log_decisions,
            handoff_idle_minutes: r.handoff_idle_minutes,
            burst_window_seconds: r.burst_window_seconds,
            after_hours_text: r.after_hours_text,
            escalation_ack_text: r.escalation_ack_text,
            llm_monthly_token_budget: r.llm_monthly_token_budget,
            window_template: match (r.window_template_name, r.window_template_language) {
                (Some(name), Some(language)) => Some(WindowTemplate { name, language }),
                _ => None,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub name: String,
    pub system_prompt: String,
    pub tone: Option<String>,
    pub max_response_length: Option<i64>,
    pub context_messages: Option<i64>,
    pub is_default: bool,
    pub position: i64,
}

impl From<TemplateRow> for Template {
    fn from(r: TemplateRow) -> Self {
        Template {
            id: TemplateId(r.id),
            name: r.name,
            system_prompt: r.system_prompt,
            tone: r.tone,
            max_response_length: r.max_response_length,
            context_messages: r.context_messages,
            is_default: r.is_default,
            position: r.position,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct TrainingRow {
    pub id: Uuid,
    pub kind: String,
    pub question: String,
    pub answer: String,
    pub examples: Json<Vec<String>>,
    pub category: Option<String>,
    pub priority: i64,
    pub active: bool,
    pub position: i64,
}

impl TryFrom<TrainingRow> for TrainingItem {
    type Error = StoreError;
    fn try_from(r: TrainingRow) -> Result<Self, StoreError> {
        Ok(TrainingItem {
            id: TrainingItemId(r.id),
            kind: TrainingKind::parse(&r.kind).ok_or_else(|| bad("training kind", &r.kind))?,
            question: r.question,
            answer: r.answer,
            examples: r.examples.0,
            category: r.category,
            priority: r.priority,
            active: r.active,
            position: r.position,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SecretRow {
    pub tenant_id: Uuid,
    pub name: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl From<SecretRow> for SecretRecord {
    fn from(r: SecretRow) -> Self {
        SecretRecord {
            tenant_id: TenantId(r.tenant_id),
            name: r.name,
            sealed: Sealed {
                key_id: r.key_id,
                nonce: r.nonce,
                ciphertext: r.ciphertext,
            },
        }
    }
}

/// Converts every row, failing on the first that does not map.
pub fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}

use super::messages::{ClaimedInbound, ClaimedOutbound, LoggedMessage, StoredDecision};
use crate::domain::message::{InboundMessage, Media, MessageKind};

#[derive(sqlx::FromRow)]
pub struct InboundRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub channel: String,
    pub provider_message_id: String,
    pub provider_account_id: String,
    pub customer_id: String,
    pub customer_phone: Option<String>,
    pub customer_user_id: Option<String>,
    pub customer_name: Option<String>,
    pub kind: String,
    pub body: Option<String>,
    pub reply_id: Option<String>,
    pub media: Option<Json<Media>>,
    pub context_message_id: Option<String>,
    pub raw: Option<Json<serde_json::Value>>,
    pub provider_timestamp: i64,
    pub received_at: DateTime<Utc>,
    pub attempts: i64,
}

impl TryFrom<InboundRow> for ClaimedInbound {
    type Error = StoreError;
    fn try_from(r: InboundRow) -> Result<Self, StoreError> {
        Ok(ClaimedInbound {
            tenant_id: TenantId(r.tenant_id),
            id: r.id,
            channel: Channel::parse(&r.channel).ok_or_else(|| bad("channel", &r.channel))?,
            message: InboundMessage {
                provider_message_id: r.provider_message_id,
                provider_account_id: r.provider_account_id,
                customer_id: r.customer_id,
                customer_phone: r.customer_phone,
                customer_user_id: r.customer_user_id,
                customer_name: r.customer_name,
                timestamp: r.provider_timestamp,
                kind: MessageKind::parse(&r.kind),
                text: r.body,
                reply_id: r.reply_id,
                media: r.media.map(|m| m.0),
                context_message_id: r.context_message_id,
                // NULL: the JSON held nothing beyond the columns (see `raw_worth_keeping`).
                raw: r.raw.map(|j| j.0).unwrap_or(serde_json::Value::Null),
            },
            received_at: r.received_at,
            attempts: r.attempts,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct OutboundRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub channel: String,
    pub provider_account_id: String,
    pub recipient: String,
    pub recipient_is_user_id: bool,
    pub body: String,
    pub mark_read_message_id: Option<String>,
    pub attempts: i64,
    pub purpose: String,
    pub window_closes_at: Option<DateTime<Utc>>,
    pub customer_id: Option<String>,
}

impl TryFrom<OutboundRow> for ClaimedOutbound {
    type Error = StoreError;
    fn try_from(r: OutboundRow) -> Result<Self, StoreError> {
        Ok(ClaimedOutbound {
            tenant_id: TenantId(r.tenant_id),
            id: r.id,
            channel: Channel::parse(&r.channel).ok_or_else(|| bad("channel", &r.channel))?,
            provider_account_id: r.provider_account_id,
            recipient: r.recipient,
            recipient_is_user_id: r.recipient_is_user_id,
            body: r.body,
            mark_read_message_id: r.mark_read_message_id,
            attempts: r.attempts,
            purpose: r.purpose,
            window_closes_at: r.window_closes_at,
            customer_id: r.customer_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct LogRow {
    pub id: Uuid,
    pub direction: String,
    pub customer_id: String,
    pub kind: String,
    pub body: Option<String>,
    pub provider_message_id: Option<String>,
    pub state: String,
    pub delivery_status: Option<String>,
    pub faq_id: Option<Uuid>,
    pub error_code: Option<i64>,
    pub attempts: i64,
    pub at: DateTime<Utc>,
}

impl From<LogRow> for LoggedMessage {
    fn from(r: LogRow) -> Self {
        LoggedMessage {
            id: r.id,
            direction: if r.direction == "in" { "in" } else { "out" },
            customer_id: r.customer_id,
            kind: r.kind,
            body: r.body,
            provider_message_id: r.provider_message_id,
            state: r.state,
            delivery_status: r.delivery_status,
            faq_id: r.faq_id,
            error_code: r.error_code,
            attempts: r.attempts,
            at: r.at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct DecisionRow {
    pub inbound_message_id: Uuid,
    pub reason: String,
    pub faq_id: Option<Uuid>,
    pub score: Option<f64>,
    pub detail: Option<Json<serde_json::Value>>,
}

impl From<DecisionRow> for StoredDecision {
    fn from(r: DecisionRow) -> Self {
        StoredDecision {
            inbound_message_id: r.inbound_message_id,
            reason: r.reason,
            faq_id: r.faq_id,
            score: r.score,
            detail: r.detail.map(|d| d.0),
        }
    }
}

use super::conversations::{ConversationState, PromptVersion, StoredNotification};

#[derive(sqlx::FromRow)]
pub struct ConversationRow {
    pub tenant_id: Uuid,
    pub channel: String,
    pub customer_id: String,
    pub id: Uuid,
    pub status: String,
    pub human_since: Option<DateTime<Utc>>,
    pub human_activity_at: Option<DateTime<Utc>>,
    pub handoff_reason: Option<String>,
    pub after_hours_notice_night: Option<chrono::NaiveDate>,
}

impl ConversationRow {
    /// The conversation keyed by (tenant, channel, customer), as `find_conversations`
    /// returns it.
    pub fn into_keyed_state(
        self,
    ) -> Result<((TenantId, Channel, String), ConversationState), StoreError> {
        let channel = Channel::parse(&self.channel)
            .ok_or_else(|| StoreError::Other(format!("unknown channel {}", self.channel)))?;
        let key = (TenantId(self.tenant_id), channel, self.customer_id.clone());
        Ok((key, self.into_state()))
    }

    pub fn into_state(self) -> ConversationState {
        ConversationState {
            id: self.id,
            status: self.status,
            human_since: self.human_since,
            human_activity_at: self.human_activity_at,
            handoff_reason: self.handoff_reason,
            after_hours_notice_night: self.after_hours_notice_night,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct PromptRow {
    pub kind: String,
    pub version: i64,
    pub body: String,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<PromptRow> for PromptVersion {
    fn from(r: PromptRow) -> Self {
        PromptVersion {
            kind: r.kind,
            version: r.version,
            body: r.body,
            note: r.note,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct NotificationRow {
    pub id: Uuid,
    pub inbound_message_id: Option<Uuid>,
    pub customer_id: String,
    pub category: String,
    pub via: String,
    pub target: String,
    pub state: String,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<NotificationRow> for StoredNotification {
    fn from(r: NotificationRow) -> Self {
        StoredNotification {
            id: r.id,
            inbound_message_id: r.inbound_message_id,
            customer_id: r.customer_id,
            category: r.category,
            via: r.via,
            target: r.target,
            state: r.state,
            detail: r.detail,
            created_at: r.created_at,
        }
    }
}

use super::admin::ApiKeyRecord;
use crate::domain::access::Role;
use crate::domain::audit::AuditEntry;

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    pub tenant_id: Option<Uuid>,
    pub role: Option<String>,
    pub id: Uuid,
    pub prefix: String,
    pub hash: String,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<KeyRow> for ApiKeyRecord {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        let role = match &r.role {
            Some(s) => Some(Role::parse(s).ok_or_else(|| bad("role", s))?),
            None => None,
        };
        Ok(ApiKeyRecord {
            tenant_id: r.tenant_id.map(TenantId),
            id: r.id,
            prefix: r.prefix,
            hash: r.hash,
            role,
            name: r.name,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub before: Option<Json<serde_json::Value>>,
    pub after: Option<Json<serde_json::Value>>,
    pub at: DateTime<Utc>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            before: r.before.map(|j| j.0),
            after: r.after.map(|j| j.0),
            at: r.at,
        }
    }
}
