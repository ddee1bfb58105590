//! Conversation state beyond the message log: hand-off to a person and back, the
//! business's own replies, versioned prompts, escalation notifications and daily usage.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{Channel, TenantId};

/// Who answers a conversation now.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationState {
    pub id: Uuid,
    /// `bot` or `human`.
    pub status: String,
    pub human_since: Option<DateTime<Utc>>,
    /// The last sign of a person handling it (hand-off, a reply from the business).
    pub human_activity_at: Option<DateTime<Utc>>,
    pub handoff_reason: Option<String>,
    /// The night (local date quiet hours began) of the last after-hours notice.
    pub after_hours_notice_night: Option<NaiveDate>,
}

/// One conversation as an admin lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationSummary {
    pub customer_id: String,
    pub channel: String,
    pub status: String,
    pub handoff_reason: Option<String>,
    pub human_since: Option<DateTime<Utc>>,
    pub last_message_at: DateTime<Utc>,
}

/// A message of the conversation so far, for the LLM's context.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryMessage {
    pub from_customer: bool,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// A reply the business sent itself (Meta's `smb_message_echoes`, or a person through
/// the admin API): logged as an outbound message that is already sent.
#[derive(Clone, Debug)]
pub struct HumanReply {
    pub tenant_id: TenantId,
    pub channel: Channel,
    pub customer_id: String,
    pub provider_account_id: String,
    pub provider_message_id: String,
    pub body: Option<String>,
    pub at: DateTime<Utc>,
}

/// The kinds of prompt a tenant can version.
pub const PROMPT_KINDS: [&str; 2] = ["system", "classifier"];

/// One stored prompt version.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptVersion {
    pub kind: String,
    pub version: i64,
    pub body: String,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// One publication of a prompt version (the newest per kind is live).
#[derive(Clone, Debug, PartialEq)]
pub struct PromptPublication {
    pub kind: String,
    pub version: i64,
    pub published_by: String,
    pub published_at: DateTime<Utc>,
}

/// An escalation notification and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredNotification {
    pub id: Uuid,
    pub inbound_message_id: Option<Uuid>,
    pub customer_id: String,
    pub category: String,
    /// `whatsapp` or `email`.
    pub via: String,
    pub target: String,
    /// queued, sent or failed (for WhatsApp, the state of its outbound message).
    pub state: String,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An email notification claimed for sending.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailJob {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub target: String,
    pub subject: String,
    pub body: String,
    /// How many times it was claimed, this claim included.
    pub attempts: i64,
}

/// One tenant's usage on one (UTC) day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageDay {
    pub day: Option<NaiveDate>,
    pub inbound: i64,
    pub outbound: i64,
    pub faq_answers: i64,
    pub llm_calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
}

/// Storage for conversation state, prompts, notifications and usage.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The state of each named conversation that exists, keyed as given.
    async fn find_conversations(
        &self,
        keys: &[(TenantId, Channel, String)],
    ) -> StoreResult<Vec<((TenantId, Channel, String), ConversationState)>>;

    /// A tenant's conversations, newest first, optionally only with `status` and with a
    /// message since `since`.
    async fn list_conversations(
        &self,
        tenant: TenantId,
        status: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> StoreResult<Vec<ConversationSummary>>;

    /// Gives a conversation back to the bot; false if there is no such conversation.
    /// Audited as `actor` in the same transaction.
    async fn release_conversation(
        &self,
        tenant: TenantId,
        channel: Channel,
        customer_id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Records a reply the business sent itself: logs it, hands the conversation to a
    /// person (the bot pauses) and cancels the bot's replies still waiting to be sent
    /// to that customer. Idempotent on the provider message id. Returns how many
    /// waiting replies were cancelled.
    async fn record_human_reply(&self, reply: &HumanReply) -> StoreResult<u64>;

    /// The customer's pending messages after `after`, oldest first (a burst).
    async fn pending_after(
        &self,
        tenant: TenantId,
        channel: Channel,
        customer_id: &str,
        after: Uuid,
    ) -> StoreResult<Vec<crate::store::messages::ClaimedInbound>>;

    /// Keeps a claimed message claimed until `until` (a burst still being typed).
    async fn defer_claim(
        &self,
        tenant: TenantId,
        id: Uuid,
        until: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// A person takes a conversation over: the bot pauses and its replies still waiting
    /// for that customer are cancelled. False if there is no such conversation.
    /// Audited as `actor` in the same transaction.
    async fn take_over_conversation(
        &self,
        tenant: TenantId,
        channel: Channel,
        customer_id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Queues a person's reply to the customer (sent by the outbox worker, 24-hour
    /// window rules included); the conversation stays with the person. Audited as
    /// `actor` in the same transaction.
    async fn queue_human_reply(
        &self,
        tenant: TenantId,
        reply: &crate::store::messages::OutboundRecord,
        actor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// The customer's contact: (phone, user id, last time they wrote).
    async fn find_contact(
        &self,
        tenant: TenantId,
        channel: Channel,
        customer_id: &str,
    ) -> StoreResult<Option<(Option<String>, Option<String>, DateTime<Utc>)>>;

    /// One conversation's messages (both directions), oldest first.
    async fn list_conversation_messages(
        &self,
        tenant: TenantId,
        channel: Channel,
        customer_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<crate::store::messages::LoggedMessage>>;

    /// One conversation's decisions, oldest first.
    async fn list_conversation_decisions(
        &self,
        tenant: TenantId,
        channel: Channel,
        customer_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<crate::store::messages::StoredDecision>>;

    /// When the customer last wrote (for the 24-hour window); `None` if never.
    async fn contact_last_inbound(
        &self,
        tenant: TenantId,
        channel: Channel,
        customer_id: &str,
    ) -> StoreResult<Option<DateTime<Utc>>>;

    /// The last `limit` messages with text between the customer and the business,
    /// oldest first.
    async fn recent_messages(
        &self,
        tenant: TenantId,
        channel: Channel,
        customer_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<HistoryMessage>>;

    // --- prompts ---
    /// Stores a new version (numbered after the newest); it is not live until published.
    /// Audited as `created_by` in the same transaction.
    async fn create_prompt_version(
        &self,
        tenant: TenantId,
        kind: &str,
        body: &str,
        note: Option<&str>,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<PromptVersion>;
    /// Makes `version` live and bumps the tenant's revision so every cache reloads.
    /// Audited as `published_by` in the same transaction.
    async fn publish_prompt_version(
        &self,
        tenant: TenantId,
        kind: &str,
        version: i64,
        published_by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<PromptPublication>;
    async fn list_prompt_versions(
        &self,
        tenant: TenantId,
        kind: &str,
    ) -> StoreResult<Vec<PromptVersion>>;
    /// Every publication of `kind`, newest first.
    async fn list_prompt_publications(
        &self,
        tenant: TenantId,
        kind: &str,
    ) -> StoreResult<Vec<PromptPublication>>;
    /// The live version of each kind that has one.
    async fn published_prompts(&self, tenant: TenantId) -> StoreResult<Vec<PromptVersion>>;

    // --- notifications and usage ---
    async fn list_notifications(
        &self,
        tenant: TenantId,
        limit: i64,
    ) -> StoreResult<Vec<StoredNotification>>;
    /// Claims up to `limit` due email notifications until `lease_until`.
    async fn claim_email_notifications(
        &self,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<EmailJob>>;
    /// Records an email attempt: `sent`, `failed` (for good), or `queued` again for
    /// `retry_at`.
    async fn record_email_attempt(
        &self,
        tenant: TenantId,
        id: Uuid,
        state: &str,
        detail: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Usage per day in `[from, to]`.
    async fn list_usage(
        &self,
        tenant: TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<UsageDay>>;
}

pub(super) const CONVERSATION_COLS: &str = "c.id, c.status, c.human_since, c.human_activity_at, \
    c.handoff_reason, c.after_hours_notice_night";

/// Implements `ConversationStore` for `$store` over `$db`.
macro_rules! impl_conversation_store {
    ($store:ty, $db:ty, $lock:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::conversations::ConversationStore for $store {
            async fn find_conversations(
                &self,
                keys: &[(TenantId, Channel, String)],
            ) -> StoreResult<Vec<((TenantId, Channel, String), ConversationState)>> {
                if let Some(found) = self.find_conversations_fast(keys).await {
                    return found;
                }
                let mut out = Vec::with_capacity(keys.len());
                for chunk in keys.chunks(300) {
                    let mut qb = QueryBuilder::<$db>::new(format!(
                        "SELECT c.tenant_id, c.channel, c.customer_id, {CONVERSATION_COLS} FROM conversations c \
                         WHERE (c.tenant_id, c.channel, c.customer_id) IN ("
                    ));
                    let mut sep = qb.separated(", ");
                    for (t, ch, cust) in chunk {
                        sep.push("(");
                        sep.push_bind_unseparated(t.0);
                        sep.push_unseparated(", ");
                        sep.push_bind_unseparated(ch.as_str());
                        sep.push_unseparated(", ");
                        sep.push_bind_unseparated(cust.as_str());
                        sep.push_unseparated(")");
                    }
                    qb.push(")");
                    let rows: Vec<ConversationRow> = qb.build_query_as().fetch_all(self.read_pool()).await?;
                    for r in rows {
                        out.push(r.into_keyed_state()?);
                    }
                }
                Ok(out)
            }

            async fn list_conversations(
                &self,
                tenant: TenantId,
                status: Option<&str>,
                since: Option<DateTime<Utc>>,
                limit: i64,
            ) -> StoreResult<Vec<ConversationSummary>> {
                let rows: Vec<(String, String, String, Option<String>, Option<DateTime<Utc>>, DateTime<Utc>)> =
                    sqlx::query_as(
                        "SELECT customer_id, channel, status, handoff_reason, human_since, last_message_at \
                         FROM conversations WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
                         AND ($3 IS NULL OR last_message_at >= $3) ORDER BY last_message_at DESC LIMIT $4",
                    )
                    .bind(tenant.0)
                    .bind(status)
                    .bind(since)
                    .bind(limit)
                    .fetch_all(self.read_pool())
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(customer_id, channel, status, handoff_reason, human_since, last_message_at)| {
                        ConversationSummary { customer_id, channel, status, handoff_reason, human_since, last_message_at }
                    })
                    .collect())
            }

            async fn release_conversation(
                &self,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
                actor: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let before = Self::conversation_status(&mut tx, tenant, channel, customer_id).await?;
                let n = sqlx::query(
                    "UPDATE conversations SET status = 'bot', human_since = NULL, human_activity_at = NULL, \
                     handoff_reason = NULL, last_message_at = CASE WHEN last_message_at > $4 THEN last_message_at ELSE $4 END \
                     WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3",
                )
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 1 {
                    let entry = AuditEntry::new(
                        actor,
                        "conversation.release",
                        format!("conversation:{customer_id}"),
                        Some(serde_json::json!({"status": before})),
                        Some(serde_json::json!({"status": "bot"})),
                        now,
                    );
                    Self::audit_on(&mut tx, tenant, &entry).await?;
                }
                tx.commit().await?;
                Ok(n == 1)
            }

            async fn record_human_reply(&self, r: &HumanReply) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let logged = sqlx::query(
                    "INSERT INTO outbound_messages (tenant_id, id, idempotency_key, channel, provider_account_id, \
                     recipient, body, state, delivery_status, provider_message_id, next_attempt_at, created_at, \
                     sent_at, updated_at, purpose, customer_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'sent', 'sent', $8, $9, $9, $9, $9, 'human', $6) \
                     ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
                )
                .bind(r.tenant_id.0)
                .bind(Uuid::now_v7())
                .bind(format!("human:{}", r.provider_message_id))
                .bind(r.channel.as_str())
                .bind(&r.provider_account_id)
                .bind(&r.customer_id)
                .bind(r.body.as_deref().unwrap_or(""))
                .bind(&r.provider_message_id)
                .bind(r.at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if logged == 0 {
                    // Seen before: nothing more to do.
                    tx.commit().await?;
                    return Ok(0);
                }
                sqlx::query(
                    "INSERT INTO contacts (tenant_id, channel, customer_id, phone, first_seen_at, last_inbound_at) \
                     VALUES ($1, $2, $3, NULL, $4, $4) ON CONFLICT (tenant_id, channel, customer_id) DO NOTHING",
                )
                .bind(r.tenant_id.0)
                .bind(r.channel.as_str())
                .bind(&r.customer_id)
                .bind(DateTime::<Utc>::UNIX_EPOCH)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO conversations (tenant_id, id, channel, customer_id, status, started_at, \
                     last_message_at, human_since, human_activity_at, handoff_reason) \
                     VALUES ($1, $2, $3, $4, 'human', $5, $5, $5, $5, 'business_replied') \
                     ON CONFLICT (tenant_id, channel, customer_id) DO UPDATE SET status = 'human', \
                     human_since = COALESCE(conversations.human_since, excluded.human_since), \
                     human_activity_at = excluded.human_activity_at, \
                     handoff_reason = COALESCE(conversations.handoff_reason, excluded.handoff_reason)",
                )
                .bind(r.tenant_id.0)
                .bind(Uuid::now_v7())
                .bind(r.channel.as_str())
                .bind(&r.customer_id)
                .bind(r.at)
                .execute(&mut *tx)
                .await?;
                let cancelled =
                    Self::cancel_bot_replies(&mut tx, r.tenant_id, r.channel, &r.customer_id, r.at).await?;
                tx.commit().await?;
                Ok(cancelled)
            }

            async fn pending_after(
                &self,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
                after: Uuid,
            ) -> StoreResult<Vec<ClaimedInbound>> {
                let sql = format!(
                    "SELECT {INBOUND_COLS} FROM inbound_messages WHERE tenant_id = $1 AND channel = $2 \
                     AND customer_id = $3 AND state = 'pending' AND id > $4 ORDER BY id LIMIT 50"
                );
                let rows: Vec<InboundRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(channel.as_str())
                    .bind(customer_id)
                    .bind(after)
                    .fetch_all(self.write_pool())
                    .await?;
                rows.into_iter().map(ClaimedInbound::try_from).collect()
            }

            async fn defer_claim(&self, tenant: TenantId, id: Uuid, until: DateTime<Utc>) -> StoreResult<()> {
                if let Some(hot) = self.hot_writer() {
                    // Every message of a tenant that merges bursts is deferred once: on
                    // SQLite through the loop's own writer, not a second connection
                    // waiting for its lock.
                    return hot.defer_claim(tenant, id, until).await;
                }
                sqlx::query(
                    "UPDATE inbound_messages SET claimed_until = $3, attempts = attempts - 1 \
                     WHERE tenant_id = $1 AND id = $2 AND state = 'pending'",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(until)
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn take_over_conversation(
                &self,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
                actor: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let before = Self::conversation_status(&mut tx, tenant, channel, customer_id).await?;
                let found = Self::hand_to_person(&mut tx, tenant, channel, customer_id, false, now).await?;
                if found {
                    let entry = AuditEntry::new(
                        actor,
                        "conversation.takeover",
                        format!("conversation:{customer_id}"),
                        Some(serde_json::json!({"status": before})),
                        Some(serde_json::json!({"status": "human"})),
                        now,
                    );
                    Self::audit_on(&mut tx, tenant, &entry).await?;
                }
                tx.commit().await?;
                Ok(found)
            }

            async fn queue_human_reply(
                &self,
                tenant: TenantId,
                o: &OutboundRecord,
                actor: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO outbound_messages (tenant_id, id, idempotency_key, channel, provider_account_id, \
                     recipient, recipient_is_user_id, body, next_attempt_at, created_at, updated_at, purpose, \
                     customer_id, window_closes_at) \
                     VALUES ($1, $2, $3, 'whatsapp', $4, $5, $6, $7, $8, $8, $8, 'human', $9, $10)",
                )
                .bind(tenant.0)
                .bind(o.id)
                .bind(&o.idempotency_key)
                .bind(&o.provider_account_id)
                .bind(&o.recipient)
                .bind(o.recipient_is_user_id)
                .bind(&o.body)
                .bind(now)
                .bind(&o.customer_id)
                .bind(o.window_closes_at)
                .execute(&mut *tx)
                .await?;
                Self::hand_to_person(&mut tx, tenant, Channel::Whatsapp, &o.customer_id, true, now).await?;
                let entry = AuditEntry::new(
                    actor,
                    "conversation.reply",
                    format!("conversation:{}", o.customer_id),
                    None,
                    Some(serde_json::json!({"message_id": o.id, "text": o.body})),
                    now,
                );
                Self::audit_on(&mut tx, tenant, &entry).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_contact(
                &self,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
            ) -> StoreResult<Option<(Option<String>, Option<String>, DateTime<Utc>)>> {
                Ok(sqlx::query_as(
                    "SELECT phone, user_id, last_inbound_at FROM contacts \
                     WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3",
                )
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .fetch_optional(self.read_pool())
                .await?)
            }

            async fn list_conversation_messages(
                &self,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
                limit: i64,
            ) -> StoreResult<Vec<LoggedMessage>> {
                let rows: Vec<LogRow> = sqlx::query_as(
                    "SELECT * FROM (SELECT id, 'in' AS direction, customer_id, kind, body, provider_message_id, \
                     state, NULL AS delivery_status, NULL AS faq_id, NULL AS error_code, attempts, received_at AS at \
                     FROM inbound_messages WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3 \
                     UNION ALL SELECT id, 'out' AS direction, customer_id, purpose AS kind, body, \
                     provider_message_id, state, delivery_status, faq_id, error_code, attempts, created_at AS at \
                     FROM outbound_messages WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3) AS log \
                     ORDER BY at, id LIMIT $4",
                )
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(LoggedMessage::from).collect())
            }

            async fn list_conversation_decisions(
                &self,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
                limit: i64,
            ) -> StoreResult<Vec<StoredDecision>> {
                let rows: Vec<DecisionRow> = sqlx::query_as(concat!(
                    decision_rows!(),
                    "WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3 \
                     AND decision_reason IS NOT NULL ORDER BY decided_at, id LIMIT $4"
                ))
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(StoredDecision::from).collect())
            }

            async fn contact_last_inbound(
                &self,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
            ) -> StoreResult<Option<DateTime<Utc>>> {
                let at: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT last_inbound_at FROM contacts WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3",
                )
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .fetch_optional(self.read_pool())
                .await?;
                Ok(at.filter(|t| *t > DateTime::<Utc>::UNIX_EPOCH))
            }

            async fn recent_messages(
                &self,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
                limit: i64,
            ) -> StoreResult<Vec<HistoryMessage>> {
                let rows: Vec<(bool, String, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT from_customer, body, at FROM (SELECT from_customer, body, at, id FROM (\
                     SELECT TRUE AS from_customer, body, received_at AS at, id FROM inbound_messages \
                     WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3 AND body IS NOT NULL \
                     AND merged_into IS NULL \
                     UNION ALL SELECT FALSE AS from_customer, body, created_at AS at, id FROM outbound_messages \
                     WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3 AND state IN ('pending', 'sent') \
                     AND purpose IN ('reply', 'human')) AS h ORDER BY at DESC, id DESC LIMIT $4) AS recent ORDER BY at, id",
                )
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(from_customer, text, at)| HistoryMessage { from_customer, text, at })
                    .collect())
            }

            async fn create_prompt_version(
                &self,
                tenant: TenantId,
                kind: &str,
                body: &str,
                note: Option<&str>,
                created_by: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<PromptVersion> {
                let mut tx = self.begin_write().await?;
                let next: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM prompt_versions WHERE tenant_id = $1 AND kind = $2",
                )
                .bind(tenant.0)
                .bind(kind)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO prompt_versions (tenant_id, kind, version, body, note, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(tenant.0)
                .bind(kind)
                .bind(next)
                .bind(body)
                .bind(note)
                .bind(created_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let entry = AuditEntry::new(
                    created_by,
                    "prompt.create",
                    format!("prompt:{kind}:{next}"),
                    None,
                    Some(serde_json::json!({"version": next, "body": body, "note": note})),
                    now,
                );
                Self::audit_on(&mut tx, tenant, &entry).await?;
                tx.commit().await?;
                Ok(PromptVersion {
                    kind: kind.to_string(),
                    version: next,
                    body: body.to_string(),
                    note: note.map(str::to_string),
                    created_by: created_by.to_string(),
                    created_at: now,
                })
            }

            async fn publish_prompt_version(
                &self,
                tenant: TenantId,
                kind: &str,
                version: i64,
                published_by: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<PromptPublication> {
                let mut tx = self.begin_write().await?;
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT version FROM prompt_versions WHERE tenant_id = $1 AND kind = $2 AND version = $3",
                )
                .bind(tenant.0)
                .bind(kind)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound("prompt version"));
                }
                let live_before: Option<i64> = sqlx::query_scalar(
                    "SELECT version FROM prompt_publications WHERE tenant_id = $1 AND kind = $2 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(tenant.0)
                .bind(kind)
                .fetch_optional(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO prompt_publications (tenant_id, kind, seq, version, published_by, published_at) \
                     SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5 FROM prompt_publications \
                     WHERE tenant_id = $1 AND kind = $2",
                )
                .bind(tenant.0)
                .bind(kind)
                .bind(version)
                .bind(published_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE tenants SET revision = revision + 1, updated_at = $2 WHERE id = $1")
                    .bind(tenant.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let entry = AuditEntry::new(
                    published_by,
                    "prompt.publish",
                    format!("prompt:{kind}"),
                    Some(serde_json::json!({"live_version": live_before})),
                    Some(serde_json::json!({"live_version": version})),
                    now,
                );
                Self::audit_on(&mut tx, tenant, &entry).await?;
                tx.commit().await?;
                Ok(PromptPublication {
                    kind: kind.to_string(),
                    version,
                    published_by: published_by.to_string(),
                    published_at: now,
                })
            }

            async fn list_prompt_versions(&self, tenant: TenantId, kind: &str) -> StoreResult<Vec<PromptVersion>> {
                let rows: Vec<PromptRow> = sqlx::query_as(
                    "SELECT kind, version, body, note, created_by, created_at FROM prompt_versions \
                     WHERE tenant_id = $1 AND kind = $2 ORDER BY version",
                )
                .bind(tenant.0)
                .bind(kind)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(PromptVersion::from).collect())
            }

            async fn list_prompt_publications(
                &self,
                tenant: TenantId,
                kind: &str,
            ) -> StoreResult<Vec<PromptPublication>> {
                let rows: Vec<(String, i64, String, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT kind, version, published_by, published_at FROM prompt_publications \
                     WHERE tenant_id = $1 AND kind = $2 ORDER BY seq DESC",
                )
                .bind(tenant.0)
                .bind(kind)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(kind, version, published_by, published_at)| PromptPublication {
                        kind,
                        version,
                        published_by,
                        published_at,
                    })
                    .collect())
            }

            async fn published_prompts(&self, tenant: TenantId) -> StoreResult<Vec<PromptVersion>> {
                let rows: Vec<PromptRow> = sqlx::query_as(
                    "SELECT v.kind, v.version, v.body, v.note, v.created_by, v.created_at \
                     FROM prompt_publications p JOIN prompt_versions v ON v.tenant_id = p.tenant_id \
                     AND v.kind = p.kind AND v.version = p.version \
                     WHERE p.tenant_id = $1 AND p.seq = (SELECT MAX(seq) FROM prompt_publications q \
                     WHERE q.tenant_id = p.tenant_id AND q.kind = p.kind)",
                )
                .bind(tenant.0)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(PromptVersion::from).collect())
            }

            async fn list_notifications(&self, tenant: TenantId, limit: i64) -> StoreResult<Vec<StoredNotification>> {
                let rows: Vec<NotificationRow> = sqlx::query_as(
                    "SELECT n.id, n.inbound_message_id, n.customer_id, n.category, n.via, n.target, \
                     CASE WHEN o.state IS NULL THEN n.state WHEN o.state = 'sent' THEN 'sent' \
                     WHEN o.state = 'pending' THEN 'queued' ELSE 'failed' END AS state, \
                     COALESCE(o.error_message, n.detail) AS detail, n.created_at \
                     FROM notifications n LEFT JOIN outbound_messages o ON o.tenant_id = n.tenant_id \
                     AND o.id = n.outbound_message_id WHERE n.tenant_id = $1 ORDER BY n.created_at, n.id LIMIT $2",
                )
                .bind(tenant.0)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(StoredNotification::from).collect())
            }

            async fn claim_email_notifications(
                &self,
                limit: i64,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> StoreResult<Vec<EmailJob>> {
                let limit = limit.clamp(1, 1000);
                let sql = format!(
                    "UPDATE notifications SET claimed_until = $1, attempts = attempts + 1 \
                     WHERE (tenant_id, id) IN (SELECT n.tenant_id, n.id FROM notifications n \
                     WHERE n.state = 'queued' AND n.via = 'email' AND n.next_attempt_at <= $2 \
                     AND (n.claimed_until IS NULL OR n.claimed_until < $2) \
                     ORDER BY n.next_attempt_at LIMIT {limit}{}) \
                     RETURNING tenant_id, id, target, subject, body, attempts",
                    $lock
                );
                let rows: Vec<(Uuid, Uuid, String, Option<String>, Option<String>, i64)> =
                    sqlx::query_as(AssertSqlSafe(sql))
                        .bind(lease_until)
                        .bind(now)
                        .fetch_all(self.write_pool())
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(t, id, target, subject, body, attempts)| EmailJob {
                        tenant_id: TenantId(t),
                        id,
                        target,
                        subject: subject.unwrap_or_default(),
                        body: body.unwrap_or_default(),
                        attempts,
                    })
                    .collect())
            }

            async fn record_email_attempt(
                &self,
                tenant: TenantId,
                id: Uuid,
                state: &str,
                detail: Option<&str>,
                retry_at: Option<DateTime<Utc>>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE notifications SET state = $3, detail = $4, \
                     next_attempt_at = COALESCE($5, next_attempt_at), claimed_until = NULL, updated_at = $6 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(state)
                .bind(detail)
                .bind(retry_at)
                .bind(now)
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn list_usage(&self, tenant: TenantId, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<UsageDay>> {
                let rows: Vec<(NaiveDate, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
                    // A day's slots summed (migration 0010).
                    "SELECT day, CAST(sum(inbound) AS BIGINT), CAST(sum(outbound) AS BIGINT), \
                     CAST(sum(faq_answers) AS BIGINT), CAST(sum(llm_calls) AS BIGINT), \
                     CAST(sum(tokens_in) AS BIGINT), CAST(sum(tokens_out) AS BIGINT) FROM usage_daily \
                     WHERE tenant_id = $1 AND day >= $2 AND day <= $3 GROUP BY day ORDER BY day",
                )
                .bind(tenant.0)
                .bind(from)
                .bind(to)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(day, inbound, outbound, faq_answers, llm_calls, tokens_in, tokens_out)| UsageDay {
                        day: Some(day),
                        inbound,
                        outbound,
                        faq_answers,
                        llm_calls,
                        tokens_in,
                        tokens_out,
                    })
                    .collect())
            }
        }
    };
}

pub(super) use impl_conversation_store;

/// Cancels the bot's replies still waiting for a customer (a person answers now);
/// replies in flight (claimed, lease running) cannot be called back.
macro_rules! impl_cancel_bot_replies {
    ($store:ty, $conn:ty) => {
        impl $store {
            /// A conversation's status (`None` if there is none), inside a write.
            async fn conversation_status(
                conn: &mut $conn,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
            ) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT status FROM conversations WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3",
                )
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .fetch_optional(&mut *conn)
                .await?)
            }

            /// Gives a conversation to a person (taken over, or a person's reply when
            /// `replied`) and cancels the bot's replies still waiting for the customer.
            /// False if there is no such conversation.
            async fn hand_to_person(
                conn: &mut $conn,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
                replied: bool,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let n = sqlx::query(
                    "UPDATE conversations SET status = 'human', human_since = COALESCE(human_since, $4), \
                     human_activity_at = $4, handoff_reason = COALESCE(handoff_reason, 'taken_over'), \
                     last_message_at = CASE WHEN $5 THEN $4 ELSE last_message_at END \
                     WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3",
                )
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .bind(now)
                .bind(replied)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if n == 1 {
                    Self::cancel_bot_replies(conn, tenant, channel, customer_id, now).await?;
                }
                Ok(n == 1)
            }

            async fn cancel_bot_replies(
                conn: &mut $conn,
                tenant: TenantId,
                channel: Channel,
                customer_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<u64> {
                Ok(sqlx::query(
                    "UPDATE outbound_messages SET state = 'cancelled', error_message = 'a person answered', \
                     updated_at = $4 WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3 \
                     AND state = 'pending' AND purpose IN ('reply', 'ack', 'notice') \
                     AND (claimed_until IS NULL OR claimed_until < $4)",
                )
                .bind(tenant.0)
                .bind(channel.as_str())
                .bind(customer_id)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected())
            }
        }
    };
}

pub(super) use impl_cancel_bot_replies;
