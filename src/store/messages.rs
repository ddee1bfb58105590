//! The conversation loop's storage: the durable inbox (inbound messages, each with its
//! decision), the outbox (outbound messages), delivery statuses and shared rate
//! counters.
//! Work is claimed with a lease (`claimed_until`), so a crashed worker's rows are
//! taken up again once the lease runs out, and one customer's messages are claimed
//! one at a time, oldest first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::message::{InboundMessage, StatusUpdate};
use crate::domain::{Channel, TenantId};

/// An inbound message to store, as the webhook received it.
#[derive(Clone, Debug)]
pub struct InboundRecord {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub channel: Channel,
    pub message: InboundMessage,
    pub received_at: DateTime<Utc>,
}

/// A delivery status to store.
#[derive(Clone, Debug)]
pub struct StatusRecord {
    pub tenant_id: TenantId,
    pub status: StatusUpdate,
    pub received_at: DateTime<Utc>,
}

/// One unit to take from a rate counter (`MessageStore::take_quota`).
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaAsk {
    pub tenant: TenantId,
    pub scope: String,
    pub window_start: DateTime<Utc>,
    pub limit: i64,
}

/// An inbound message claimed for processing.
#[derive(Clone, Debug)]
pub struct ClaimedInbound {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub channel: Channel,
    pub message: InboundMessage,
    pub received_at: DateTime<Utc>,
    /// How many times it was claimed, this claim included.
    pub attempts: i64,
}

/// Why the bot did what it did with one message.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRecord {
    pub reason: String,
    pub faq_id: Option<Uuid>,
    pub score: Option<f64>,
    pub detail: Option<serde_json::Value>,
}

/// A message to send, written to the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRecord {
    pub id: Uuid,
    /// Unique per tenant: the same key twice is one message (e.g. `reply:<inbound id>`).
    pub idempotency_key: String,
    pub provider_account_id: String,
    pub recipient: String,
    pub recipient_is_user_id: bool,
    pub body: String,
    pub faq_id: Option<Uuid>,
    /// Also mark this inbound message read once the reply is sent.
    pub mark_read_message_id: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    /// reply, ack, notice, notification or human.
    pub purpose: &'static str,
    /// The recipient's contact key (the customer id, or the staff number's digits).
    pub customer_id: String,
    /// After this, free-form text may not be sent (WhatsApp's 24-hour window); the
    /// tenant's approved template is used, or the message is recorded unsendable.
    pub window_closes_at: Option<DateTime<Utc>>,
}

/// A conversation changing hands.
#[derive(Clone, Debug, PartialEq)]
pub enum Handoff {
    /// To a person; the bot stays silent until released or idle.
    ToHuman { reason: String },
    /// Back to the bot (the person went idle).
    ToBot,
}

/// An escalation notification to write with a turn.
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationRecord {
    pub id: Uuid,
    pub category: String,
    /// whatsapp or email.
    pub via: &'static str,
    pub target: String,
    /// The outbound message carrying it (WhatsApp).
    pub outbound_message_id: Option<Uuid>,
    /// queued, or failed when it cannot be sent at all.
    pub state: &'static str,
    pub detail: Option<String>,
    /// Email only: what is sent, and when (quiet hours may hold it back).
    pub subject: Option<String>,
    pub body: Option<String>,
    pub send_at: DateTime<Utc>,
}

/// What one turn adds to the tenant's daily usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageDelta {
    pub inbound: i64,
    pub faq_answers: i64,
    pub llm_calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
}

/// How many rows a tenant's usage of a day is spread over (`usage_daily.slot`, summed
/// when read; migration 0010).
pub const USAGE_SLOTS: u16 = 8;

/// The usage slot for a transaction's counts: the next one in turn, so that concurrent
/// transactions mostly add to different rows of a tenant's day instead of each waiting
/// for the one before it to commit (their row locks last until the commit). Every
/// count of one transaction goes to one slot, taken in tenant order as before.
pub fn usage_slot() -> i16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    i16::try_from(n % USAGE_SLOTS).unwrap_or(0)
}

/// A batch's turns summed into each tenant's usage, in tenant order (the order the
/// shared usage rows are locked in).
pub fn usage_per_tenant(turns: &[TurnRecord]) -> std::collections::BTreeMap<TenantId, UsageDelta> {
    let mut usage: std::collections::BTreeMap<TenantId, UsageDelta> = Default::default();
    for t in turns {
        let u = usage.entry(t.tenant_id).or_default();
        u.inbound += t.usage.inbound;
        u.faq_answers += t.usage.faq_answers;
        u.llm_calls += t.usage.llm_calls;
        u.tokens_in += t.usage.tokens_in;
        u.tokens_out += t.usage.tokens_out;
    }
    usage
}

/// The first turn of each customer in `turns`. A batch holds one message per customer
/// (see claim_inbound), but dedupe anyway: one statement may not write a row twice.
pub(super) fn one_turn_per_customer(turns: &[TurnRecord]) -> Vec<&TurnRecord> {
    let mut seen = std::collections::HashSet::new();
    turns
        .iter()
        .filter(|t| seen.insert((t.tenant_id, t.channel, t.customer_id.as_str())))
        .collect()
}

/// How many of `results` were sent, per tenant, in tenant order.
pub fn sent_per_tenant(results: &[SendResult]) -> std::collections::BTreeMap<TenantId, i64> {
    let mut sent: std::collections::BTreeMap<TenantId, i64> = Default::default();
    for r in results {
        if matches!(r.outcome, SendOutcome::Sent { .. }) {
            *sent.entry(r.tenant_id).or_default() += 1;
        }
    }
    sent
}

/// Everything one processed inbound message writes, in one transaction with the rest
/// of its batch.
#[derive(Clone, Debug)]
pub struct TurnRecord {
    pub tenant_id: TenantId,
    pub inbound_id: Uuid,
    pub channel: Channel,
    pub customer_id: String,
    pub customer_phone: Option<String>,
    pub customer_user_id: Option<String>,
    pub customer_name: Option<String>,
    pub received_at: DateTime<Utc>,
    /// The customer's conversation when the turn was decided, if there was one: the
    /// SQLite writer then updates it by id instead of upserting it and reading its id
    /// back (one statement a message fewer). A hint only: the writer still creates or
    /// looks it up when it is gone or was made meanwhile.
    pub conversation_id: Option<Uuid>,
    /// `None` when the tenant turned decision logging off.
    pub decision: Option<DecisionRecord>,
    /// Messages to send: the answer, an acknowledgement, a notice, notifications.
    pub replies: Vec<OutboundRecord>,
    /// False when the tenant turned message text logging off: the text is dropped.
    pub keep_text: bool,
    pub handoff: Option<Handoff>,
    /// Records that the after-hours notice for this night went out.
    pub notice_night: Option<chrono::NaiveDate>,
    pub notifications: Vec<NotificationRecord>,
    pub usage: UsageDelta,
    /// Later messages of the same burst, answered with this one.
    pub merged: Vec<Uuid>,
}

/// An outbound message claimed for sending.
#[derive(Clone, Debug)]
pub struct ClaimedOutbound {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub channel: Channel,
    pub provider_account_id: String,
    pub recipient: String,
    pub recipient_is_user_id: bool,
    pub body: String,
    pub mark_read_message_id: Option<String>,
    /// How many times it was claimed, this claim included.
    pub attempts: i64,
    pub purpose: String,
    pub window_closes_at: Option<DateTime<Utc>>,
    /// The recipient's contact key (replies go out one at a time per key).
    pub customer_id: Option<String>,
}

/// A customer's conversation key: tenant, channel, customer id.
pub type ConversationKey = (TenantId, Channel, String);

/// New messages leased in the transaction that stored them
/// (`MessageStore::store_webhook_leasing`).
#[derive(Debug, Default)]
pub struct StoredLeased {
    pub messages: Vec<ClaimedInbound>,
    /// Their customers' conversations (those that have one), read in that same
    /// transaction; `None` if the store did not read them.
    pub conversations: Option<Vec<(ConversationKey, super::conversations::ConversationState)>>,
    /// Turns decided and written in that same transaction (`DecideNow`): their
    /// messages are done and are not among `messages`.
    pub decided: Vec<TurnRecord>,
    /// The replies of `decided` leased in that transaction, to send at once (as
    /// `MessageStore::complete_inbound_leasing` returns them).
    pub replies: Vec<ClaimedOutbound>,
}

/// Decides, inside the transaction that stores and leases new messages
/// (`MessageStore::store_webhook_deciding`), the ones that need nothing but what is at
/// hand (no model, no burst to wait for, no staff to tell), so that their turns are
/// written in that same transaction instead of a second one. The rest stay leased for
/// the pipeline, as with `store_webhook_leasing`. Runs on the store's writer: keep it
/// to in-memory work.
pub trait DecideNow: Send {
    /// For each leased message (with their customers' conversations, as read in the
    /// transaction), `Some(quota chain)` if it is decided here (the chain of counters its
    /// reply takes, possibly empty), `None` to leave it to the pipeline.
    fn prepare(
        &mut self,
        leased: &[ClaimedInbound],
        conversations: &[(ConversationKey, super::conversations::ConversationState)],
    ) -> Vec<Option<Vec<QuotaAsk>>>;

    /// The turns of the prepared messages, in their order, given for each the index of
    /// the counter its chain was refused at (as `MessageStore::take_quotas`).
    fn finish(self: Box<Self>, reached: Vec<Option<usize>>) -> Vec<TurnRecord>;
}

/// What decides new messages in the storing transaction, the time it decides at, and
/// until when it leases their replies (none: left to the sender's claim).
pub type Deciding = (Box<dyn DecideNow>, DateTime<Utc>, Option<DateTime<Utc>>);

/// `DecideNow::prepare`, for both stores' deciding transactions: the chains of the
/// messages it decides (flattened, in order), or `None` if it panicked (a bug: every
/// message is then left to the pipeline, and the webhook is still stored).
pub(super) fn prepare_or_leave(
    decide: &mut dyn DecideNow,
    leased: &[ClaimedInbound],
    conversations: &[(ConversationKey, super::conversations::ConversationState)],
) -> Option<Vec<Vec<QuotaAsk>>> {
    let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decide.prepare(leased, conversations)
    }));
    match prepared {
        Ok(chains) => Some(chains.into_iter().flatten().collect()),
        Err(_) => {
            left_to_pipeline("prepare");
            None
        }
    }
}

/// `DecideNow::finish` likewise: the turns, or `None` if it panicked (the caller then
/// undoes the counters it took).
pub(super) fn finish_or_leave(
    decide: Box<dyn DecideNow>,
    reached: Vec<Option<usize>>,
) -> Option<Vec<TurnRecord>> {
    let turns = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide.finish(reached)));
    turns.inspect_err(|_| left_to_pipeline("finish")).ok()
}

fn left_to_pipeline(what: &str) {
    tracing::error!("deciding stored messages panicked in {what}; left to the pipeline");
}

/// The messages of a webhook that may be leased as they are stored (by index): each
/// customer's first here, unless it repeats an earlier message id of the batch (a
/// webhook delivered twice within one commit), which is not new. Both stores then lease
/// those that were not stored before and whose customer has nothing pending.
pub(super) fn lease_candidates(messages: &[InboundRecord]) -> Vec<usize> {
    let mut customers = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    messages
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let m = &r.message;
            let first = customers.insert((r.tenant_id, r.channel, m.customer_id.as_str()));
            seen.insert((r.tenant_id, r.channel, m.provider_message_id.as_str())) && first
        })
        .map(|(i, _)| i)
        .collect()
}

impl ClaimedInbound {
    /// A new message leased in the transaction that stores it, as a claim would read it
    /// back (see `raw_worth_keeping`): handed out, and decided, as it is.
    pub(super) fn leased_from(r: &InboundRecord) -> Self {
        let m = &r.message;
        // Field by field, so that the provider's JSON, a tree of many small
        // allocations, is copied only when it is kept (a new field fails to compile
        // here rather than being left out).
        let message = InboundMessage {
            provider_message_id: m.provider_message_id.clone(),
            provider_account_id: m.provider_account_id.clone(),
            customer_id: m.customer_id.clone(),
            customer_phone: m.customer_phone.clone(),
            customer_user_id: m.customer_user_id.clone(),
            customer_name: m.customer_name.clone(),
            timestamp: m.timestamp,
            kind: m.kind.clone(),
            text: m.text.clone(),
            reply_id: m.reply_id.clone(),
            media: m.media.clone(),
            context_message_id: m.context_message_id.clone(),
            raw: if raw_worth_keeping(m) {
                m.raw.clone()
            } else {
                serde_json::Value::Null
            },
        };
        ClaimedInbound {
            tenant_id: r.tenant_id,
            id: r.id,
            channel: r.channel,
            message,
            received_at: r.received_at,
            attempts: 1,
        }
    }
}

impl ClaimedOutbound {
    /// A reply of `turn` as its first claim would return it: for the stores that lease
    /// it in the transaction that queues it (`MessageStore::complete_inbound_leasing`).
    pub(super) fn leased(turn: &TurnRecord, reply: &OutboundRecord) -> Self {
        ClaimedOutbound {
            tenant_id: turn.tenant_id,
            id: reply.id,
            channel: turn.channel,
            provider_account_id: reply.provider_account_id.clone(),
            recipient: reply.recipient.clone(),
            recipient_is_user_id: reply.recipient_is_user_id,
            body: reply.body.clone(),
            mark_read_message_id: reply.mark_read_message_id.clone(),
            attempts: 1,
            purpose: reply.purpose.to_string(),
            window_closes_at: reply.window_closes_at,
            customer_id: Some(reply.customer_id.clone()),
        }
    }
}

/// What became of one send attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum SendOutcome {
    Sent {
        provider_message_id: String,
    },
    /// Try again at `at`.
    Retry {
        at: DateTime<Utc>,
        code: Option<i64>,
        message: String,
    },
    /// Never retried (a permanent error).
    Failed {
        code: Option<i64>,
        message: String,
    },
    /// Retried until the limit; given up.
    Dead {
        code: Option<i64>,
        message: String,
    },
    /// Not sent, and never will be (e.g. `window_closed`).
    Unsendable {
        reason: String,
    },
}

/// The outcome of one claimed outbound message.
#[derive(Clone, Debug)]
pub struct SendResult {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub outcome: SendOutcome,
}

/// One row of the message log, inbound or outbound, for admins and tests.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedMessage {
    pub id: Uuid,
    pub direction: &'static str,
    pub customer_id: String,
    pub kind: String,
    pub body: Option<String>,
    pub provider_message_id: Option<String>,
    /// Inbound: pending/done. Outbound: pending/sent/failed/dead.
    pub state: String,
    /// Outbound only: queued/sent/delivered/read/failed.
    pub delivery_status: Option<String>,
    pub faq_id: Option<Uuid>,
    pub error_code: Option<i64>,
    pub attempts: i64,
    pub at: DateTime<Utc>,
}

/// A decision as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDecision {
    pub inbound_message_id: Uuid,
    pub reason: String,
    pub faq_id: Option<Uuid>,
    pub score: Option<f64>,
    pub detail: Option<serde_json::Value>,
}

/// Storage for the conversation loop.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a webhook's messages and statuses in one transaction. Messages already
    /// stored (same tenant, channel and provider id) and statuses already recorded
    /// (same message and status) are skipped. Returns how many messages were new.
    async fn store_webhook(
        &self,
        messages: &[InboundRecord],
        statuses: &[StatusRecord],
    ) -> StoreResult<usize>;

    /// As `store_webhook`, and in the same transaction leases, until `lease_until`, each
    /// new message that is its customer's only pending one (what `claim_inbound` would
    /// pick), and returns those: the caller processes them at once, as if claimed. A
    /// crash leaves them to be claimed when the lease runs out. Stores that cannot do
    /// this in the same transaction lease none.
    async fn store_webhook_leasing(
        &self,
        messages: &[InboundRecord],
        statuses: &[StatusRecord],
        lease_until: DateTime<Utc>,
    ) -> StoreResult<(usize, StoredLeased)> {
        let _ = lease_until;
        Ok((
            self.store_webhook(messages, statuses).await?,
            StoredLeased::default(),
        ))
    }

    /// As `store_webhook_leasing`, and in the same transaction decides the leased
    /// messages that `decide` can (`DecideNow`) and writes their turns as
    /// `complete_inbound_leasing` does, leasing their replies until `reply_lease` (none
    /// without). Stores that cannot do this in one transaction decide none.
    async fn store_webhook_deciding(
        &self,
        messages: &[InboundRecord],
        statuses: &[StatusRecord],
        lease_until: DateTime<Utc>,
        decide: Box<dyn DecideNow>,
        now: DateTime<Utc>,
        reply_lease: Option<DateTime<Utc>>,
    ) -> StoreResult<(usize, StoredLeased)> {
        let _ = (decide, now, reply_lease);
        self.store_webhook_leasing(messages, statuses, lease_until)
            .await
    }

    /// Claims up to `limit` pending inbound messages until `lease_until`: the oldest
    /// pending message of each customer, none whose customer has one in flight.
    async fn claim_inbound(
        &self,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<ClaimedInbound>>;

    /// Writes the results of processed messages (contacts, conversations, decisions,
    /// outbox rows) and marks them done, all in one transaction.
    async fn complete_inbound(&self, turns: &[TurnRecord], now: DateTime<Utc>) -> StoreResult<()>;

    /// As `complete_inbound`, and in the same transaction leases, until `lease_until`,
    /// each new reply that is due and has no other pending message of its recipient
    /// before it (what `claim_outbound` would pick), and returns those: the caller sends
    /// them at once and records them with `record_send_results`, as if claimed, instead
    /// of the sender claiming them back. A crash leaves them to be claimed when the
    /// lease runs out. Stores that cannot do this in the same transaction lease none.
    async fn complete_inbound_leasing(
        &self,
        turns: &[TurnRecord],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<ClaimedOutbound>> {
        let _ = lease_until;
        self.complete_inbound(turns, now).await?;
        Ok(Vec::new())
    }

    /// Counts one reply against `scope`'s window if it stays within `limit`;
    /// false (and nothing counted) when the limit is reached.
    async fn take_quota(
        &self,
        tenant: TenantId,
        scope: &str,
        window_start: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<bool>;

    /// Takes one unit from each chain's counters in order (as `take_quota`), stopping
    /// at the first whose limit is reached; returns, per chain, the index of that
    /// counter, if there was one. One transaction for them all where the store has a
    /// writer of its own (SQLite): the pipeline counts a whole batch's replies at once.
    async fn take_quotas(&self, chains: &[Vec<QuotaAsk>]) -> StoreResult<Vec<Option<usize>>> {
        take_in_turn(self, chains).await
    }

    /// Claims up to `limit` outbound messages that are due: per customer, only the
    /// oldest pending one.
    async fn claim_outbound(
        &self,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<ClaimedOutbound>>;

    /// Records send outcomes. Idempotent, so no transaction is needed: a crash half-way
    /// leaves rows pending, to be sent or recorded again after their lease.
    async fn record_send_results(
        &self,
        results: &[SendResult],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Marks a tenant's channel token as expired (Meta error 190).
    async fn mark_token_expired(&self, tenant: TenantId, channel: Channel) -> StoreResult<()>;

    /// Periodic upkeep of the queue tables (PostgreSQL: vacuum them, so claims do not
    /// walk dead rows when autovacuum is off or behind, and with `analyze` refresh
    /// their statistics; SQLite: checkpoint the write-ahead log beside the writer).
    async fn maintain_queues(&self, analyze: bool) -> StoreResult<()>;

    /// How many inbound messages wait to be processed, and outbound to be sent.
    async fn queue_depths(&self) -> StoreResult<(i64, i64)>;

    /// A tenant's message log (inbound and outbound), oldest first.
    async fn list_messages(&self, tenant: TenantId, limit: i64) -> StoreResult<Vec<LoggedMessage>>;

    /// A tenant's decisions, oldest first.
    async fn list_decisions(
        &self,
        tenant: TenantId,
        limit: i64,
    ) -> StoreResult<Vec<StoredDecision>>;
}

/// A rate counter's key: tenant, scope, window start.
pub(super) type CounterKey = (TenantId, String, DateTime<Utc>);

pub(super) fn counter_key(q: &QuotaAsk) -> CounterKey {
    (q.tenant, q.scope.clone(), q.window_start)
}

/// The rate-counter take of `TAKE_QUOTA_SQL`, as a literal both statements are made of.
macro_rules! take_quota_sql {
    () => {
        "INSERT INTO rate_counters (tenant_id, scope, window_start, count) \
         VALUES ($1, $2, $3, 1) ON CONFLICT (tenant_id, scope, window_start) \
         DO UPDATE SET count = rate_counters.count + 1 WHERE rate_counters.count < $4"
    };
}

/// Takes one unit from a rate counter while it is under its limit ($4), returning the
/// new count (no row when the limit was reached).
pub(super) const TAKE_QUOTA_SQL: &str = concat!(take_quota_sql!(), " RETURNING count");

/// `TAKE_QUOTA_SQL` without its RETURNING (which SQLite runs through a temporary b-tree
/// built afresh on every execution), for SQLite's loop writer: it changes one row when
/// it took a unit (a new counter at 1, or one under the limit raised by one) and none
/// when the limit was reached. SQLite numbers `$1`…`$4` by first appearance; the writer
/// binds them positionally.
pub(super) const TAKE_QUOTA_SQL_NO_RETURNING: &str = take_quota_sql!();

/// The index of the first of `chain`'s counters that `take` refuses (it takes one unit
/// from each it accepts, in order, and stops there), if one is refused.
pub(super) fn first_refused<E>(
    chain: &[QuotaAsk],
    mut take: impl FnMut(&QuotaAsk) -> Result<bool, E>,
) -> Result<Option<usize>, E> {
    for (i, q) in chain.iter().enumerate() {
        if !take(q)? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// `MessageStore::take_quotas` over counters read (and locked) beforehand, `counts`
/// (missing ones are at 0), which it updates: a chain takes one unit from each of its
/// counters in order while that counter is under its limit, and stops at the first that
/// is not (as `take_quota`'s `count < limit` update does).
pub(super) fn take_from(
    chains: &[Vec<QuotaAsk>],
    counts: &mut std::collections::HashMap<CounterKey, i64>,
) -> Vec<Option<usize>> {
    chains
        .iter()
        .map(|chain| {
            let Ok(reached) = first_refused(chain, |q| {
                let count = counts.entry(counter_key(q)).or_insert(0);
                let under = *count < q.limit;
                *count += i64::from(under);
                Ok::<_, std::convert::Infallible>(under)
            });
            reached
        })
        .collect()
}

/// `MessageStore::take_quotas` one `take_quota` at a time.
pub(super) async fn take_in_turn<S: MessageStore + ?Sized>(
    store: &S,
    chains: &[Vec<QuotaAsk>],
) -> StoreResult<Vec<Option<usize>>> {
    let mut out = Vec::with_capacity(chains.len());
    for chain in chains {
        let mut reached = None;
        for (i, q) in chain.iter().enumerate() {
            if !store
                .take_quota(q.tenant, &q.scope, q.window_start, q.limit)
                .await?
            {
                reached = Some(i);
                break;
            }
        }
        out.push(reached);
    }
    Ok(out)
}

/// Whether a message's provider JSON says more than its columns. A plain text message
/// (sender, id, time, a `text` object of only its body) does not, and is stored without
/// it; anything else (media, replies, ad referrals, forwarded flags, a text that is not
/// an object, unknown types) keeps its JSON whole.
/// A plain text message parsed from a webhook comes with its JSON null already.
pub fn raw_worth_keeping(m: &InboundMessage) -> bool {
    use crate::domain::message::{MessageKind, PLAIN_TEXT_KEYS};
    match (&m.kind, m.raw.as_object()) {
        (MessageKind::Text, Some(obj)) => {
            !obj.keys().all(|k| PLAIN_TEXT_KEYS.contains(&k.as_str()))
                || m.raw["text"].as_object().is_none_or(|t| t.len() > 1)
        }
        (MessageKind::Text, None) => !m.raw.is_null(),
        _ => true,
    }
}

/// Rank of a delivery status: statuses only move forward. `failed` may replace
/// queued/sent/delivered but not read; nothing replaces `failed`.
pub(super) fn delivery_rank(status: &str) -> i64 {
    match status {
        "queued" => 0,
        "sent" => 1,
        "delivered" => 2,
        "read" | "played" => 3,
        "failed" => 3,
        _ => -1,
    }
}

pub(super) const RANK_SQL: &str = "(CASE delivery_status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 \
    WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE 4 END)";

pub(super) const INBOUND_COLS: &str = "tenant_id, id, channel, provider_message_id, provider_account_id, \
    customer_id, customer_phone, customer_user_id, customer_name, kind, body, reply_id, media, \
    context_message_id, raw, provider_timestamp, received_at, attempts";

pub(super) const OUTBOUND_COLS: &str = "tenant_id, id, channel, provider_account_id, recipient, \
    recipient_is_user_id, body, mark_read_message_id, attempts, purpose, window_closes_at, \
    customer_id";

/// The inbound claim: leases up to `limit` pending messages, one per customer, oldest
/// first (a message is claimable only while it is its customer's oldest pending one: a
/// scalar sub-select, one short probe of the customer index per candidate, which
/// PostgreSQL cannot turn into a hash of every pending row), binding `$1` lease end and
/// `$2` now; `lock` is appended to the sub-select
/// (`FOR UPDATE SKIP LOCKED` on PostgreSQL). The limit is written into the text, not
/// bound: SQLite re-prepares a statement on every execution when its LIMIT is a bound
/// parameter.
pub(super) fn claim_inbound_sql(limit: i64, lock: &str) -> String {
    let limit = limit.clamp(1, 10_000);
    claim_sql(
        "inbound_messages",
        "m.state = 'pending' AND (m.claimed_until IS NULL OR m.claimed_until < $2)",
        &format!("ORDER BY m.id LIMIT {limit}"),
        lock,
        INBOUND_COLS,
    )
}

/// The outbound claim: leases up to `limit` due messages, one per customer (as
/// `claim_inbound_sql`): a customer's replies, acknowledgements and notices go out in
/// order, one at a time.
pub(super) fn claim_outbound_sql(limit: i64, lock: &str) -> String {
    let limit = limit.clamp(1, 10_000);
    claim_sql(
        "outbound_messages",
        "m.state = 'pending' AND m.next_attempt_at <= $2 \
         AND (m.claimed_until IS NULL OR m.claimed_until < $2)",
        &format!("ORDER BY m.next_attempt_at LIMIT {limit}"),
        lock,
        OUTBOUND_COLS,
    )
}

/// A claim on `table`: the rows the sub-select picks (and, on PostgreSQL, locks), each
/// its customer's oldest pending one, get the lease. PostgreSQL updates them by their
/// physical address (`ctid`, stable while the sub-select holds their row locks): a
/// plain `(tenant_id, id) IN` join left the choice of index to the plan cached for the
/// statement, which on stale statistics walked a whole tenant's rows through another
/// index for every claimed row.
fn claim_sql(table: &str, due: &str, order: &str, lock: &str, cols: &str) -> String {
    let pick = |key: &str| {
        format!(
            "SELECT {key} FROM {table} m WHERE {due} \
             AND m.id = (SELECT o.id FROM {table} o WHERE o.tenant_id = m.tenant_id \
             AND o.channel = m.channel AND o.customer_id = m.customer_id \
             AND o.state = 'pending' ORDER BY o.id LIMIT 1) {order}{lock}"
        )
    };
    let target = if lock.is_empty() {
        format!("(tenant_id, id) IN ({})", pick("m.tenant_id, m.id"))
    } else {
        format!("ctid = ANY(ARRAY({}))", pick("m.ctid"))
    };
    format!(
        "UPDATE {table} SET claimed_until = $1, attempts = attempts + 1 WHERE {target} \
         RETURNING {cols}"
    )
}

/// Implements `MessageStore` for `$store` over `$conn`; `$lock` is appended to the
/// claim sub-selects (`FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on SQLite,
/// whose write transactions are already exclusive).
macro_rules! impl_message_store {
    ($store:ty, $conn:ty, $db:ty, $lock:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::messages::MessageStore for $store {
            async fn store_webhook(
                &self,
                messages: &[InboundRecord],
                statuses: &[StatusRecord],
            ) -> StoreResult<usize> {
                if let Some(hot) = self.hot_writer() {
                    return hot
                        .store_webhook(messages, statuses, None, None)
                        .await
                        .map(|(new, _)| new);
                }
                if statuses.is_empty() && messages.len() <= 500 {
                    // The common case is one statement: atomic without a transaction,
                    // and one round trip to the database instead of three.
                    let mut conn = self.write_pool().acquire().await?;
                    return Self::insert_inbound(&mut conn, messages).await;
                }
                let mut tx = self.begin_write().await?;
                let mut new = 0;
                for chunk in messages.chunks(500) {
                    new += Self::insert_inbound(&mut tx, chunk).await?;
                }
                for s in statuses {
                    Self::apply_status(&mut tx, s).await?;
                }
                tx.commit().await?;
                Ok(new)
            }

            async fn claim_inbound(
                &self,
                limit: i64,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> StoreResult<Vec<ClaimedInbound>> {
                if let Some(hot) = self.hot_writer() {
                    return hot.claim_inbound(limit, now, lease_until).await;
                }
                let sql = claim_inbound_sql(limit, $lock);
                // One statement: atomic on its own, no explicit transaction needed.
                let rows: Vec<InboundRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(lease_until)
                    .bind(now)
                    .fetch_all(self.write_pool())
                    .await?;
                let mut out: Vec<ClaimedInbound> = rows.into_iter().map(ClaimedInbound::try_from).collect::<StoreResult<_>>()?;
                out.sort_by_key(|c| c.id);
                Ok(out)
            }

            async fn store_webhook_leasing(
                &self,
                messages: &[InboundRecord],
                statuses: &[StatusRecord],
                lease_until: DateTime<Utc>,
            ) -> StoreResult<(usize, $crate::store::messages::StoredLeased)> {
                if let Some(hot) = self.hot_writer() {
                    return hot.store_webhook(messages, statuses, Some(lease_until), None).await;
                }
                if let Some(done) = self
                    .store_webhook_deciding_arrays(messages, statuses, lease_until, None)
                    .await
                {
                    return done;
                }
                Ok((self.store_webhook(messages, statuses).await?, Default::default()))
            }

            async fn store_webhook_deciding(
                &self,
                messages: &[InboundRecord],
                statuses: &[StatusRecord],
                lease_until: DateTime<Utc>,
                decide: Box<dyn $crate::store::messages::DecideNow>,
                now: DateTime<Utc>,
                reply_lease: Option<DateTime<Utc>>,
            ) -> StoreResult<(usize, $crate::store::messages::StoredLeased)> {
                if let Some(hot) = self.hot_writer() {
                    return hot
                        .store_webhook(messages, statuses, Some(lease_until), Some((decide, now, reply_lease)))
                        .await;
                }
                if let Some(done) = self
                    .store_webhook_deciding_arrays(messages, statuses, lease_until, Some((decide, now, reply_lease)))
                    .await
                {
                    return done;
                }
                Ok((self.store_webhook(messages, statuses).await?, Default::default()))
            }

            async fn complete_inbound_leasing(
                &self,
                turns: &[TurnRecord],
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> StoreResult<Vec<$crate::store::messages::ClaimedOutbound>> {
                if let Some(hot) = self.hot_writer() {
                    return hot.complete_inbound(turns, now, Some(lease_until)).await;
                }
                if let Some(done) = self
                    .complete_inbound_leasing_arrays(turns, now, lease_until)
                    .await
                {
                    return done;
                }
                self.complete_inbound(turns, now).await?;
                Ok(Vec::new())
            }

            async fn complete_inbound(&self, turns: &[TurnRecord], now: DateTime<Utc>) -> StoreResult<()> {
                if let Some(hot) = self.hot_writer() {
                    return hot.complete_inbound(turns, now, None).await.map(|_| ());
                }
                if let Some(done) = self.complete_inbound_arrays(turns, now).await {
                    return done;
                }
                if turns.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                let unique = $crate::store::messages::one_turn_per_customer(turns);
                for chunk in unique.chunks(400) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO contacts (tenant_id, channel, customer_id, phone, user_id, name, \
                         first_seen_at, last_inbound_at) ",
                    );
                    qb.push_values(chunk, |mut b, t| {
                        b.push_bind(t.tenant_id.0)
                            .push_bind(t.channel.as_str())
                            .push_bind(&t.customer_id)
                            .push_bind(&t.customer_phone)
                            .push_bind(&t.customer_user_id)
                            .push_bind(&t.customer_name)
                            .push_bind(t.received_at)
                            .push_bind(t.received_at);
                    });
                    qb.push(
                        " ON CONFLICT (tenant_id, channel, customer_id) DO UPDATE SET \
                         phone = COALESCE(excluded.phone, contacts.phone), \
                         user_id = COALESCE(excluded.user_id, contacts.user_id), \
                         name = COALESCE(excluded.name, contacts.name), \
                         last_inbound_at = CASE WHEN excluded.last_inbound_at > contacts.last_inbound_at \
                         THEN excluded.last_inbound_at ELSE contacts.last_inbound_at END",
                    );
                    qb.build().execute(&mut *tx).await?;
                }
                let mut conversations: std::collections::HashMap<(Uuid, String, String), Uuid> =
                    std::collections::HashMap::with_capacity(unique.len());
                for chunk in unique.chunks(400) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO conversations (tenant_id, id, channel, customer_id, started_at, last_message_at) ",
                    );
                    qb.push_values(chunk, |mut b, t| {
                        b.push_bind(t.tenant_id.0)
                            .push_bind(Uuid::now_v7())
                            .push_bind(t.channel.as_str())
                            .push_bind(&t.customer_id)
                            .push_bind(t.received_at)
                            .push_bind(t.received_at);
                    });
                    qb.push(
                        " ON CONFLICT (tenant_id, channel, customer_id) DO UPDATE SET \
                         last_message_at = excluded.last_message_at \
                         RETURNING tenant_id, channel, customer_id, id",
                    );
                    let rows: Vec<(Uuid, String, String, Uuid)> =
                        qb.build_query_as().fetch_all(&mut *tx).await?;
                    for (tenant, channel, customer, id) in rows {
                        conversations.insert((tenant, channel, customer), id);
                    }
                }
                let conv = |t: &TurnRecord| {
                    conversations
                        .get(&(t.tenant_id.0, t.channel.as_str().to_string(), t.customer_id.clone()))
                        .copied()
                };
                let replies: Vec<(&TurnRecord, &OutboundRecord)> =
                    turns.iter().flat_map(|t| t.replies.iter().map(move |o| (t, o))).collect();
                for chunk in replies.chunks(300) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO outbound_messages (tenant_id, id, idempotency_key, conversation_id, \
                         inbound_message_id, channel, provider_account_id, recipient, recipient_is_user_id, \
                         body, faq_id, mark_read_message_id, next_attempt_at, created_at, updated_at, \
                         purpose, customer_id, window_closes_at) ",
                    );
                    qb.push_values(chunk, |mut b, (t, o)| {
                        b.push_bind(t.tenant_id.0)
                            .push_bind(o.id)
                            .push_bind(&o.idempotency_key)
                            .push_bind(conv(t))
                            .push_bind(t.inbound_id)
                            .push_bind(t.channel.as_str())
                            .push_bind(&o.provider_account_id)
                            .push_bind(&o.recipient)
                            .push_bind(o.recipient_is_user_id)
                            .push_bind(&o.body)
                            .push_bind(o.faq_id)
                            .push_bind(&o.mark_read_message_id)
                            .push_bind(o.next_attempt_at)
                            .push_bind(now)
                            .push_bind(now)
                            .push_bind(o.purpose)
                            .push_bind(&o.customer_id)
                            .push_bind(o.window_closes_at);
                    });
                    qb.push(" ON CONFLICT (tenant_id, idempotency_key) DO NOTHING");
                    qb.build().execute(&mut *tx).await?;
                }
                Self::write_turn_extras(&mut tx, turns, &conv, now).await?;
                // Done, with the decision (`keep_first_decision`).
                for chunk in turns.chunks(400) {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE inbound_messages SET state = 'done', claimed_until = NULL, ");
                    qb.push("processed_at = ").push_bind(now);
                    qb.push(concat!(
                        ", conversation_id = v.column3, \
                         body = CASE WHEN v.column4 THEN body ELSE NULL END, \
                         raw = CASE WHEN v.column4 THEN raw ELSE '",
                        redacted_raw!(),
                        "' END, ",
                        keep_first_decision!(
                            "inbound_messages",
                            "v.column5",
                            "v.column6",
                            "v.column7",
                            "v.column8",
                            "v.column9"
                        ),
                        " FROM ("
                    ));
                    qb.push_values(chunk, |mut b, t| {
                        let d = t.decision.as_ref();
                        b.push_bind(t.tenant_id.0)
                            .push_bind(t.inbound_id)
                            .push_bind(conv(t))
                            .push_bind(t.keep_text)
                            .push_bind(d.map(|d| d.reason.as_str()))
                            .push_bind(d.and_then(|d| d.faq_id))
                            .push_bind(d.and_then(|d| d.score))
                            .push_bind(d.and_then(|d| d.detail.as_ref()).map(Json))
                            .push_bind(now);
                    });
                    qb.push(") AS v WHERE inbound_messages.tenant_id = v.column1 AND inbound_messages.id = v.column2");
                    qb.build().execute(&mut *tx).await?;
                }
                Self::count_inbound_usage(&mut tx, turns, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn take_quota(
                &self,
                tenant: TenantId,
                scope: &str,
                window_start: DateTime<Utc>,
                limit: i64,
            ) -> StoreResult<bool> {
                if let Some(hot) = self.hot_writer() {
                    // Through the loop's own writer: a second SQLite connection writing
                    // beside it waits for its lock on every reply.
                    let ask = QuotaAsk { tenant, scope: scope.to_string(), window_start, limit };
                    let reached = hot.take_quotas(vec![vec![ask]]).await?;
                    return Ok(reached.first().is_some_and(|r| r.is_none()));
                }
                let counted: Option<i64> = sqlx::query_scalar($crate::store::messages::TAKE_QUOTA_SQL)
                .bind(tenant.0)
                .bind(scope)
                .bind(window_start)
                .bind(limit)
                .fetch_optional(self.write_pool())
                .await?;
                Ok(counted.is_some_and(|c| c <= limit))
            }

            async fn take_quotas(&self, chains: &[Vec<QuotaAsk>]) -> StoreResult<Vec<Option<usize>>> {
                if let Some(hot) = self.hot_writer() {
                    return hot.take_quotas(chains.to_vec()).await;
                }
                if let Some(taken) = self.take_quotas_arrays(chains).await {
                    return taken;
                }
                $crate::store::messages::take_in_turn(self, chains).await
            }

            async fn claim_outbound(
                &self,
                limit: i64,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> StoreResult<Vec<ClaimedOutbound>> {
                if let Some(hot) = self.hot_writer() {
                    return hot.claim_outbound(limit, now, lease_until).await;
                }
                let sql = claim_outbound_sql(limit, $lock);
                // One statement: atomic on its own, no explicit transaction needed.
                let rows: Vec<OutboundRow> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(lease_until)
                    .bind(now)
                    .fetch_all(self.write_pool())
                    .await?;
                rows.into_iter().map(ClaimedOutbound::try_from).collect()
            }

            async fn record_send_results(&self, results: &[SendResult], now: DateTime<Utc>) -> StoreResult<()> {
                if let Some(hot) = self.hot_writer() {
                    return hot.record_send_results(results, now).await;
                }
                if results.is_empty() {
                    return Ok(());
                }
                // No transaction: each statement is atomic and every step is idempotent
                // (statuses only move forward), so a crash between them loses nothing.
                let mut tx = self.write_pool().acquire().await?;
                if let Some(done) = Self::mark_sent_arrays(&mut tx, results, now).await {
                    done?;
                } else {
                    let sent: Vec<(&SendResult, &String)> = results
                        .iter()
                        .filter_map(|r| match &r.outcome {
                            SendOutcome::Sent { provider_message_id } => Some((r, provider_message_id)),
                            _ => None,
                        })
                        .collect();
                    for chunk in sent.chunks(500) {
                        let mut qb = QueryBuilder::<$db>::new("UPDATE outbound_messages SET state = 'sent', claimed_until = NULL, ");
                        qb.push("sent_at = ").push_bind(now).push(", updated_at = ").push_bind(now);
                        qb.push(
                            ", provider_message_id = v.column3, \
                             delivery_status = CASE WHEN delivery_status = 'queued' THEN 'sent' ELSE delivery_status END FROM (",
                        );
                        qb.push_values(chunk, |mut b, (r, id)| {
                            b.push_bind(r.tenant_id.0).push_bind(r.id).push_bind(id.as_str());
                        });
                        qb.push(") AS v WHERE outbound_messages.tenant_id = v.column1 AND outbound_messages.id = v.column2");
                        qb.build().execute(&mut *tx).await?;
                        // Statuses that arrived before we learnt the ids.
                        let mut qb = QueryBuilder::<$db>::new(
                            "SELECT tenant_id, provider_message_id, status, error_code FROM message_statuses \
                             WHERE (tenant_id, provider_message_id) IN (",
                        );
                        qb.push_values(chunk, |mut b, (r, id)| {
                            b.push_bind(r.tenant_id.0).push_bind(id.as_str());
                        });
                        qb.push(")");
                        let early: Vec<(Uuid, String, String, Option<i64>)> =
                            qb.build_query_as().fetch_all(&mut *tx).await?;
                        for (tenant, id, status, code) in early {
                            Self::advance_delivery(&mut tx, TenantId(tenant), &id, &status, code, now).await?;
                        }
                    }
                    Self::count_outbound(&mut tx, results, now).await?;
                }
                for r in results {
                    match &r.outcome {
                        SendOutcome::Sent { .. } => {}
                        SendOutcome::Unsendable { reason } => {
                            sqlx::query(
                                "UPDATE outbound_messages SET state = 'unsendable', claimed_until = NULL, \
                                 error_message = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
                            )
                            .bind(r.tenant_id.0)
                            .bind(r.id)
                            .bind(reason)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                        SendOutcome::Retry { at, code, message } => {
                            sqlx::query(
                                "UPDATE outbound_messages SET next_attempt_at = $3, claimed_until = NULL, \
                                 error_code = $4, error_message = $5, updated_at = $6 \
                                 WHERE tenant_id = $1 AND id = $2",
                            )
                            .bind(r.tenant_id.0)
                            .bind(r.id)
                            .bind(at)
                            .bind(code)
                            .bind(message)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                        SendOutcome::Failed { code, message } | SendOutcome::Dead { code, message } => {
                            let state = if matches!(r.outcome, SendOutcome::Failed { .. }) { "failed" } else { "dead" };
                            sqlx::query(
                                "UPDATE outbound_messages SET state = $3, delivery_status = 'failed', \
                                 claimed_until = NULL, error_code = $4, error_message = $5, updated_at = $6 \
                                 WHERE tenant_id = $1 AND id = $2",
                            )
                            .bind(r.tenant_id.0)
                            .bind(r.id)
                            .bind(state)
                            .bind(code)
                            .bind(message)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                Ok(())
            }

            async fn mark_token_expired(&self, tenant: TenantId, channel: Channel) -> StoreResult<()> {
                sqlx::query("UPDATE channel_accounts SET token_status = 'expired' WHERE tenant_id = $1 AND channel = $2")
                    .bind(tenant.0)
                    .bind(channel.as_str())
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }

            async fn maintain_queues(&self, analyze: bool) -> StoreResult<()> {
                Self::maintain(self.maintenance_pool(), analyze).await
            }

            async fn queue_depths(&self) -> StoreResult<(i64, i64)> {
                let inbound: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbound_messages WHERE state = 'pending'")
                    .fetch_one(self.read_pool())
                    .await?;
                let outbound: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbound_messages WHERE state = 'pending'")
                    .fetch_one(self.read_pool())
                    .await?;
                Ok((inbound, outbound))
            }

            async fn list_messages(&self, tenant: TenantId, limit: i64) -> StoreResult<Vec<LoggedMessage>> {
                let rows: Vec<LogRow> = sqlx::query_as(
                    "SELECT * FROM (SELECT id, 'in' AS direction, customer_id, kind, body, provider_message_id, \
                     state, NULL AS delivery_status, NULL AS faq_id, NULL AS error_code, attempts, received_at AS at \
                     FROM inbound_messages WHERE tenant_id = $1 \
                     UNION ALL SELECT id, 'out' AS direction, recipient AS customer_id, 'text' AS kind, body, \
                     provider_message_id, state, delivery_status, faq_id, error_code, attempts, created_at AS at \
                     FROM outbound_messages WHERE tenant_id = $1) AS log ORDER BY at, direction LIMIT $2",
                )
                .bind(tenant.0)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(LoggedMessage::from).collect())
            }

            async fn list_decisions(&self, tenant: TenantId, limit: i64) -> StoreResult<Vec<StoredDecision>> {
                let rows: Vec<DecisionRow> = sqlx::query_as(concat!(
                    decision_rows!(),
                    "WHERE tenant_id = $1 AND decision_reason IS NOT NULL ORDER BY decided_at, id LIMIT $2"
                ))
                .bind(tenant.0)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(StoredDecision::from).collect())
            }
        }

        impl $store {
            /// The rarer parts of a batch of turns: hand-offs, after-hours notices,
            /// notifications and merged bursts.
            async fn write_turn_extras<F>(conn: &mut $conn, turns: &[TurnRecord], conv: &F, now: DateTime<Utc>) -> StoreResult<()>
            where
                F: Fn(&TurnRecord) -> Option<Uuid> + Sync,
            {
                for t in turns {
                    match &t.handoff {
                        Some(Handoff::ToHuman { reason }) => {
                            sqlx::query(
                                "UPDATE conversations SET status = 'human', human_since = $4, human_activity_at = $4, \
                                 handoff_reason = $5 WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3",
                            )
                            .bind(t.tenant_id.0)
                            .bind(t.channel.as_str())
                            .bind(&t.customer_id)
                            .bind(now)
                            .bind(reason)
                            .execute(&mut *conn)
                            .await?;
                        }
                        Some(Handoff::ToBot) => {
                            sqlx::query(
                                "UPDATE conversations SET status = 'bot', human_since = NULL, human_activity_at = NULL, \
                                 handoff_reason = NULL WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3",
                            )
                            .bind(t.tenant_id.0)
                            .bind(t.channel.as_str())
                            .bind(&t.customer_id)
                            .execute(&mut *conn)
                            .await?;
                        }
                        None => {}
                    }
                    if let Some(night) = t.notice_night {
                        sqlx::query(
                            "UPDATE conversations SET after_hours_notice_night = $4 \
                             WHERE tenant_id = $1 AND channel = $2 AND customer_id = $3",
                        )
                        .bind(t.tenant_id.0)
                        .bind(t.channel.as_str())
                        .bind(&t.customer_id)
                        .bind(night)
                        .execute(&mut *conn)
                        .await?;
                    }
                    for n in &t.notifications {
                        sqlx::query(
                            "INSERT INTO notifications (tenant_id, id, inbound_message_id, customer_id, category, via, \
                             target, outbound_message_id, state, detail, created_at, updated_at, subject, body, \
                             next_attempt_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
                        )
                        .bind(t.tenant_id.0)
                        .bind(n.id)
                        .bind(t.inbound_id)
                        .bind(&t.customer_id)
                        .bind(&n.category)
                        .bind(n.via)
                        .bind(&n.target)
                        .bind(n.outbound_message_id)
                        .bind(n.state)
                        .bind(&n.detail)
                        .bind(now)
                        .bind(&n.subject)
                        .bind(&n.body)
                        .bind((n.via == "email" && n.state == "queued").then_some(n.send_at))
                        .execute(&mut *conn)
                        .await?;
                    }
                    if !t.merged.is_empty() {
                        let mut qb = QueryBuilder::<$db>::new("UPDATE inbound_messages SET state = 'done', claimed_until = NULL, ");
                        qb.push("processed_at = ").push_bind(now);
                        qb.push(", merged_into = ").push_bind(t.inbound_id);
                        qb.push(", conversation_id = ").push_bind(conv(t));
                        qb.push(" WHERE tenant_id = ").push_bind(t.tenant_id.0);
                        qb.push(" AND id IN (");
                        let mut sep = qb.separated(", ");
                        for id in &t.merged {
                            sep.push_bind(*id);
                        }
                        qb.push(")");
                        qb.build().execute(&mut *conn).await?;
                    }
                }
                Ok(())
            }

            /// Counts a batch's turns into the day's usage. Last before the commit: the
            /// usage rows are shared by every batch of a tenant, so their row locks are
            /// held as briefly as possible.
            async fn count_inbound_usage(conn: &mut $conn, turns: &[TurnRecord], now: DateTime<Utc>) -> StoreResult<()> {
                let usage: Vec<(TenantId, UsageDelta)> = usage_per_tenant(turns).into_iter().collect();
                let slot = usage_slot();
                for chunk in usage.chunks(400) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO usage_daily (tenant_id, day, slot, inbound, faq_answers, llm_calls, tokens_in, tokens_out) ",
                    );
                    qb.push_values(chunk, |mut b, (tenant, u)| {
                        b.push_bind(tenant.0)
                            .push_bind(now.date_naive())
                            .push_bind(slot)
                            .push_bind(u.inbound)
                            .push_bind(u.faq_answers)
                            .push_bind(u.llm_calls)
                            .push_bind(u.tokens_in)
                            .push_bind(u.tokens_out);
                    });
                    qb.push(
                        " ON CONFLICT (tenant_id, day, slot) DO UPDATE SET inbound = usage_daily.inbound + excluded.inbound, \
                         faq_answers = usage_daily.faq_answers + excluded.faq_answers, \
                         llm_calls = usage_daily.llm_calls + excluded.llm_calls, \
                         tokens_in = usage_daily.tokens_in + excluded.tokens_in, \
                         tokens_out = usage_daily.tokens_out + excluded.tokens_out",
                    );
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Counts sent messages into the day's usage.
            async fn count_outbound(conn: &mut $conn, results: &[SendResult], now: DateTime<Utc>) -> StoreResult<()> {
                let rows: Vec<(TenantId, i64)> = sent_per_tenant(results).into_iter().collect();
                let slot = usage_slot();
                for chunk in rows.chunks(400) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO usage_daily (tenant_id, day, slot, outbound) ");
                    qb.push_values(chunk, |mut b, (tenant, n)| {
                        b.push_bind(tenant.0).push_bind(now.date_naive()).push_bind(slot).push_bind(*n);
                    });
                    qb.push(" ON CONFLICT (tenant_id, day, slot) DO UPDATE SET outbound = usage_daily.outbound + excluded.outbound");
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// One multi-row insert (SQLite allows 32766 parameters: at most 500 rows).
            async fn insert_inbound(conn: &mut $conn, chunk: &[InboundRecord]) -> StoreResult<usize> {
                if chunk.is_empty() {
                    return Ok(0);
                }
                if let Some(done) = Self::insert_inbound_arrays(conn, chunk).await {
                    return done;
                }
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO inbound_messages (tenant_id, id, channel, provider_message_id, \
                     provider_account_id, customer_id, customer_phone, customer_user_id, customer_name, \
                     kind, body, reply_id, media, context_message_id, raw, provider_timestamp, received_at) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    let m = &r.message;
                    b.push_bind(r.tenant_id.0)
                        .push_bind(r.id)
                        .push_bind(r.channel.as_str())
                        .push_bind(&m.provider_message_id)
                        .push_bind(&m.provider_account_id)
                        .push_bind(&m.customer_id)
                        .push_bind(&m.customer_phone)
                        .push_bind(&m.customer_user_id)
                        .push_bind(&m.customer_name)
                        .push_bind(m.kind.as_str())
                        .push_bind(&m.text)
                        .push_bind(&m.reply_id)
                        .push_bind(m.media.as_ref().map(Json))
                        .push_bind(&m.context_message_id)
                        .push_bind(raw_worth_keeping(m).then(|| Json(&m.raw)))
                        .push_bind(m.timestamp)
                        .push_bind(r.received_at);
                });
                qb.push(" ON CONFLICT (tenant_id, channel, provider_message_id) DO NOTHING");
                Ok(qb.build().execute(&mut *conn).await?.rows_affected() as usize)
            }

            async fn apply_status(conn: &mut $conn, s: &StatusRecord) -> StoreResult<()> {
                let st = &s.status;
                let code = st.errors.first().map(|e| e.code);
                let inserted = sqlx::query(
                    "INSERT INTO message_statuses (tenant_id, provider_message_id, status, provider_timestamp, \
                     error_code, errors, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (tenant_id, provider_message_id, status) DO NOTHING",
                )
                .bind(s.tenant_id.0)
                .bind(&st.provider_message_id)
                .bind(&st.status)
                .bind(st.timestamp)
                .bind(code)
                .bind((!st.errors.is_empty()).then(|| Json(&st.errors)))
                .bind(s.received_at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if inserted == 1 {
                    Self::advance_delivery(conn, s.tenant_id, &st.provider_message_id, &st.status, code, s.received_at).await?;
                }
                Ok(())
            }

            /// Moves an outbound message's delivery status forward, never back.
            async fn advance_delivery(
                conn: &mut $conn,
                tenant: TenantId,
                provider_message_id: &str,
                status: &str,
                code: Option<i64>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let rank = delivery_rank(status);
                if rank < 0 {
                    return Ok(());
                }
                let new_status = if status == "played" { "read" } else { status };
                let failed = new_status == "failed";
                let sql = format!(
                    "UPDATE outbound_messages SET delivery_status = $3, updated_at = $4, \
                     state = CASE WHEN $5 THEN 'failed' ELSE state END, \
                     error_code = COALESCE($6, error_code) \
                     WHERE tenant_id = $1 AND provider_message_id = $2 AND {RANK_SQL} < $7"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(provider_message_id)
                    .bind(new_status)
                    .bind(now)
                    .bind(failed)
                    .bind(code)
                    .bind(rank)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(super) use impl_message_store;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::MessageKind;
    use serde_json::json;

    fn msg(kind: MessageKind, raw: serde_json::Value) -> InboundMessage {
        InboundMessage {
            provider_message_id: "wamid.1".into(),
            provider_account_id: "1".into(),
            customer_id: "2".into(),
            customer_phone: Some("2".into()),
            customer_user_id: None,
            customer_name: None,
            timestamp: 0,
            kind,
            text: Some("hi".into()),
            reply_id: None,
            media: None,
            context_message_id: None,
            raw,
        }
    }

    #[test]
    fn only_a_plain_text_message_is_stored_without_its_json() {
        let plain = json!({"from": "2", "id": "wamid.1", "timestamp": "1", "type": "text", "text": {"body": "hi"}});
        assert!(!raw_worth_keeping(&msg(MessageKind::Text, plain)));
        let forwarded = json!({"from": "2", "id": "w", "timestamp": "1", "type": "text", "text": {"body": "hi"},
            "context": {"forwarded": true}});
        assert!(raw_worth_keeping(&msg(MessageKind::Text, forwarded)));
        let from_ad = json!({"from": "2", "id": "w", "timestamp": "1", "type": "text", "text": {"body": "hi"},
            "referral": {"source_type": "ad", "ctwa_clid": "x"}});
        assert!(raw_worth_keeping(&msg(MessageKind::Text, from_ad)));
        let link = json!({"from": "2", "id": "w", "timestamp": "1", "type": "text", "text": {"body": "hi", "preview": 1}});
        assert!(raw_worth_keeping(&msg(MessageKind::Text, link)));
        assert!(raw_worth_keeping(&msg(
            MessageKind::Other("hologram".into()),
            json!({"type": "hologram"})
        )));
        assert!(raw_worth_keeping(&msg(
            MessageKind::Image,
            json!({"type": "image"})
        )));
    }

    #[test]
    fn a_message_leased_as_it_is_stored_carries_its_json_only_where_it_is_kept() {
        let record = |raw| InboundRecord {
            tenant_id: TenantId::new(),
            id: Uuid::now_v7(),
            channel: Channel::Whatsapp,
            message: msg(MessageKind::Text, raw),
            received_at: Utc::now(),
        };
        let plain = record(
            json!({"from": "2", "id": "wamid.1", "timestamp": "1", "type": "text",
            "text": {"body": "hi"}}),
        );
        let leased = ClaimedInbound::leased_from(&plain);
        assert_eq!(leased.message.raw, serde_json::Value::Null);
        let mut expected = plain.message.clone();
        expected.raw = serde_json::Value::Null;
        assert_eq!(leased.message, expected);
        assert_eq!((leased.id, leased.tenant_id), (plain.id, plain.tenant_id));
        let forwarded = record(
            json!({"from": "2", "id": "w", "timestamp": "1", "type": "text",
            "text": {"body": "hi"}, "context": {"forwarded": true}}),
        );
        assert_eq!(
            ClaimedInbound::leased_from(&forwarded).message,
            forwarded.message
        );
    }

    #[test]
    fn counters_are_taken_in_the_chains_order_and_a_chain_stops_at_its_first_limit() {
        let tenant = TenantId::new();
        let hour = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let ask = |scope: &str, limit| QuotaAsk {
            tenant,
            scope: scope.to_string(),
            window_start: hour,
            limit,
        };
        let chains = vec![
            vec![ask("user_day:a", 1), ask("tenant_hour", 3)],
            // Its daily limit is spent already: the hourly counter is not touched.
            vec![ask("user_day:b", 1), ask("tenant_hour", 3)],
            vec![ask("user_day:c", 1), ask("tenant_hour", 3)],
            // The hour is full by now; the daily unit it took stays taken, as with
            // `take_quota` one statement at a time.
            vec![ask("user_day:d", 1), ask("tenant_hour", 3)],
            vec![],
        ];
        let mut counts = std::collections::HashMap::from([
            (counter_key(&ask("tenant_hour", 3)), 1),
            (counter_key(&ask("user_day:b", 1)), 1),
        ]);
        let reached = take_from(&chains, &mut counts);
        assert_eq!(reached, [None, Some(0), None, Some(1), None]);
        assert_eq!(counts[&counter_key(&ask("tenant_hour", 3))], 3);
        assert_eq!(counts[&counter_key(&ask("user_day:a", 1))], 1);
        assert_eq!(counts[&counter_key(&ask("user_day:b", 1))], 1);
        assert_eq!(counts[&counter_key(&ask("user_day:d", 1))], 1);
    }

    #[test]
    fn delivery_statuses_rank_forward_only() {
        assert!(delivery_rank("sent") < delivery_rank("delivered"));
        assert!(delivery_rank("delivered") < delivery_rank("read"));
        assert_eq!(delivery_rank("played"), delivery_rank("read"));
        assert_eq!(delivery_rank("deleted"), -1);
    }
}
