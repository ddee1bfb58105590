//! PostgreSQL's hot writes as fixed-text statements over arrays (`unnest`).
//!
//! The shared sqlx code writes a batch as a multi-row `VALUES` list, whose text changes
//! with the batch size: PostgreSQL parses and plans every such statement afresh, and at
//! a few thousand messages a second that planning was most of the server's CPU. These
//! statements bind one array per column instead, so each is prepared once per
//! connection and its plan reused. SQLite has no arrays; its store answers `None` to
//! the same hooks and keeps the `VALUES` lists (its hot writer prepares per row anyway).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::PgStore;
use crate::domain::{Channel, TenantId};
use crate::store::StoreResult;
use crate::store::conversations::{CONVERSATION_COLS, ConversationState};
use crate::store::messages::*;
use crate::store::rows::ConversationRow;

/// A webhook's messages, each as it is stored: pending (leased or not), or done in its
/// conversation, with its decision, when decided in the same transaction
/// (`store_deciding`), followed by what to do with a message stored before.
macro_rules! insert_inbound {
    ($then:literal) => {
        concat!(
            "INSERT INTO inbound_messages (tenant_id, id, channel, \
    provider_message_id, provider_account_id, customer_id, customer_phone, customer_user_id, \
    customer_name, kind, body, reply_id, media, context_message_id, raw, provider_timestamp, \
    received_at, state, claimed_until, attempts, conversation_id, processed_at, \
    decision_reason, decision_faq_id, decision_score, decision_detail, decided_at) \
    SELECT t, i, ch, pm, pa, cu, ph, us, na, k, b, r, me::jsonb, cx, ra::jsonb, ts, rc, \
    st, cl, at, cv, pr, dr, df, ds, dd::jsonb, CASE WHEN dr IS NULL THEN NULL ELSE pr END \
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
    $14::text[], $15::text[], $16::int8[], $17::timestamptz[], $18::text[], \
    $19::timestamptz[], $20::int8[], $21::uuid[], $22::timestamptz[], $23::text[], \
    $24::uuid[], $25::float8[], $26::text[]) \
    AS v (t, i, ch, pm, pa, cu, ph, us, na, k, b, r, me, cx, ra, ts, rc, st, cl, at, cv, pr, \
    dr, df, ds, dd) ",
            $then
        )
    };
}

/// Skips a message stored before (a provider's retry).
const INSERT_INBOUND: &str = insert_inbound!(
    "ON CONFLICT (tenant_id, channel, provider_message_id) DO NOTHING RETURNING id"
);

/// For messages the transaction has just looked up and found new, under their
/// customers' locks (`store_deciding`): no arbiter probe and no speculative insertion
/// with its confirmation, which `ON CONFLICT` costs. A copy stored meanwhile by a
/// writer that takes no customer lock (`store_webhook`, when no pipeline slot is free,
/// storing Meta's redelivery of the same webhook) fails the transaction on the key.
const INSERT_NEW_INBOUND: &str = insert_inbound!("RETURNING id");

/// Takes, in array order, the transaction-scoped locks of a webhook's customers
/// (`customer_lock`): two transactions storing messages of one customer then look for
/// each other's rows one after the other, never side by side.
const LOCK_CUSTOMERS: &str = "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) AS k";

/// The key space of `LOCK_CUSTOMERS` (the first of the two-key advisory locks; sqlx's
/// migration lock uses the one-key form, a space of its own).
const CUSTOMER_LOCKS: i32 = 0x7061_726c;

/// What the storing transaction reads, in one statement (one round trip), of each
/// message that could be leased as it is stored (by ordinal, from 1): whether it was
/// stored before (`seen`), whether its customer has a message pending (`waiting`;
/// either makes it busy, not leased), whether its customer
/// has a reply pending (which goes before anything new; tested only when `$5`, that
/// is when this transaction may lease replies), and its customer's conversation, if
/// any. Each test is one probe of a unique or customer index, whatever
/// the plan cached for the statement (`LATERAL` for the conversation: see
/// `find_conversations`). One snapshot for all three: a message of the customer that
/// the pipeline finishes meanwhile is seen either pending or done with its reply.
const LOOK_AHEAD: &str = "SELECT v.n, \
    EXISTS (SELECT 1 FROM inbound_messages m WHERE m.tenant_id = v.t \
    AND m.channel = v.ch AND m.provider_message_id = v.pm) AS seen, \
    EXISTS (SELECT 1 FROM inbound_messages m WHERE m.tenant_id = v.t \
    AND m.channel = v.ch AND m.customer_id = v.cu AND m.state = 'pending') AS waiting, \
    $5 AND EXISTS (SELECT 1 FROM outbound_messages o WHERE o.tenant_id = v.t \
    AND o.channel = v.ch AND o.customer_id = v.cu AND o.state = 'pending') AS replying, \
    c.id, c.status, c.human_since, c.human_activity_at, c.handoff_reason, \
    c.after_hours_notice_night \
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS v (t, ch, pm, cu, n) \
    LEFT JOIN LATERAL (SELECT * FROM conversations x WHERE x.tenant_id = v.t \
    AND x.channel = v.ch AND x.customer_id = v.cu) AS c ON true";

/// A row of `LOOK_AHEAD`.
#[derive(sqlx::FromRow)]
struct LookAhead {
    n: i64,
    seen: bool,
    waiting: bool,
    replying: bool,
    id: Option<Uuid>,
    status: Option<String>,
    human_since: Option<DateTime<Utc>>,
    human_activity_at: Option<DateTime<Utc>>,
    handoff_reason: Option<String>,
    after_hours_notice_night: Option<chrono::NaiveDate>,
}

impl LookAhead {
    /// Not leased: stored before, or its customer has a message pending.
    fn busy(&self) -> bool {
        self.seen || self.waiting
    }

    /// The customer's conversation, if there is one.
    fn conversation(&self) -> Option<ConversationState> {
        Some(ConversationState {
            id: self.id?,
            status: self.status.clone()?,
            human_since: self.human_since,
            human_activity_at: self.human_activity_at,
            handoff_reason: self.handoff_reason.clone(),
            after_hours_notice_night: self.after_hours_notice_night,
        })
    }
}

/// How a contact stored before takes a new message's details (`UPSERT_CUSTOMERS`,
/// `STORE_CUSTOMERS`): what it did not know, and the latest inbound time.
macro_rules! merge_contact {
    () => {
        "ON CONFLICT (tenant_id, channel, customer_id) DO UPDATE SET \
        phone = COALESCE(excluded.phone, contacts.phone), \
        user_id = COALESCE(excluded.user_id, contacts.user_id), \
        name = COALESCE(excluded.name, contacts.name), \
        last_inbound_at = GREATEST(excluded.last_inbound_at, contacts.last_inbound_at)"
    };
}

/// Each customer's contact and conversation, in one statement (one round trip): the
/// contact's upsert is a data-modifying `WITH`, which PostgreSQL runs whether or not
/// the rest reads it, and the conversations' ids come back.
const UPSERT_CUSTOMERS: &str = concat!(
    "WITH contact AS (INSERT INTO contacts (tenant_id, channel, \
    customer_id, phone, user_id, name, first_seen_at, last_inbound_at) \
    SELECT t, ch, cu, ph, us, na, rc, rc \
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::timestamptz[]) AS v (t, ch, cu, ph, us, na, rc) ",
    merge_contact!(),
    ") \
    INSERT INTO conversations (tenant_id, id, channel, customer_id, started_at, last_message_at) \
    SELECT t, i, ch, cu, rc, rc \
    FROM unnest($1::uuid[], $8::uuid[], $2::text[], $3::text[], $7::timestamptz[]) \
    AS v (t, i, ch, cu, rc) \
    ON CONFLICT (tenant_id, channel, customer_id) DO UPDATE SET \
    last_message_at = excluded.last_message_at \
    RETURNING tenant_id, channel, customer_id, id"
);

/// The storing transaction's contacts and conversations, in one statement ($1–$7 the
/// customers, $8 their conversations' ids, $9 whether the transaction found that
/// conversation). A customer whose conversation it did not find is taken as new: their
/// contact and conversation are inserted without `ON CONFLICT`'s arbiter probe and
/// speculative insertion (a contact there after all fails the transaction). A known customer's contact is upserted, as `UPSERT_CUSTOMERS` does, and
/// their conversation's last message time updated by its key. Answers how many known
/// conversations it found.
const STORE_CUSTOMERS: &str = concat!(
    "WITH new_contact AS (INSERT INTO contacts (tenant_id, \
    channel, customer_id, phone, user_id, name, first_seen_at, last_inbound_at) \
    SELECT t, ch, cu, ph, us, na, rc, rc \
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::timestamptz[], $9::bool[]) AS v (t, ch, cu, ph, us, na, rc, k) WHERE NOT v.k), \
    contact AS (INSERT INTO contacts (tenant_id, channel, \
    customer_id, phone, user_id, name, first_seen_at, last_inbound_at) \
    SELECT t, ch, cu, ph, us, na, rc, rc \
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::timestamptz[], $9::bool[]) AS v (t, ch, cu, ph, us, na, rc, k) WHERE v.k ",
    merge_contact!(),
    "), \
    fresh AS (INSERT INTO conversations (tenant_id, id, channel, customer_id, started_at, \
    last_message_at) SELECT t, i, ch, cu, rc, rc \
    FROM unnest($1::uuid[], $8::uuid[], $2::text[], $3::text[], $7::timestamptz[], \
    $9::bool[]) AS v (t, i, ch, cu, rc, k) WHERE NOT v.k), \
    old AS (UPDATE conversations AS c SET last_message_at = v.rc \
    FROM unnest($1::uuid[], $8::uuid[], $7::timestamptz[], $9::bool[]) AS v (t, i, rc, k) \
    WHERE v.k AND c.tenant_id = v.t AND c.id = v.i RETURNING 1) \
    SELECT count(*) FROM old"
);

/// A batch's turns in one statement (one round trip): the messages marked done, each
/// with its decision (`keep_first_decision`), when the pipeline decided them
/// ($20–$28; empty arrays when they were inserted done, decision and all), the day's
/// usage ($29–$36) and the replies
/// ($2–$19), followed by what to do with a reply whose idempotency key is stored
/// already, and returning the ids of the replies inserted; $1 is the time of all of
/// them. The parts touch different rows and none reads another's (they share one
/// snapshot). The transaction's last write: the usage rows, shared by every batch of a
/// tenant, stay locked only until the commit.
macro_rules! write_turns {
    ($then:literal) => {
        concat!("WITH done AS (UPDATE inbound_messages AS m SET state = 'done', \
    claimed_until = NULL, processed_at = $1, conversation_id = v.c, \
    body = CASE WHEN v.keep THEN m.body ELSE NULL END, \
    raw = CASE WHEN v.keep THEN m.raw ELSE $28::jsonb END, ",
    keep_first_decision!("m", "v.r", "v.f", "v.s", "v.d::jsonb", "$1"),
    " FROM unnest($20::uuid[], $21::uuid[], $22::uuid[], $23::bool[], $24::text[], \
    $25::uuid[], $26::float8[], $27::text[]) AS v (t, i, c, keep, r, f, s, d) \
    WHERE m.tenant_id = v.t AND m.id = v.i), \
    used AS (INSERT INTO usage_daily (tenant_id, day, slot, inbound, \
    faq_answers, llm_calls, tokens_in, tokens_out) \
    SELECT t, $35, $36, n, f, l, ti, tout \
    FROM unnest($29::uuid[], $30::int8[], $31::int8[], $32::int8[], $33::int8[], $34::int8[]) \
    AS v (t, n, f, l, ti, tout) \
    ON CONFLICT (tenant_id, day, slot) DO UPDATE SET inbound = usage_daily.inbound + excluded.inbound, \
    faq_answers = usage_daily.faq_answers + excluded.faq_answers, \
    llm_calls = usage_daily.llm_calls + excluded.llm_calls, \
    tokens_in = usage_daily.tokens_in + excluded.tokens_in, \
    tokens_out = usage_daily.tokens_out + excluded.tokens_out) \
    INSERT INTO outbound_messages (tenant_id, id, idempotency_key, \
    conversation_id, inbound_message_id, channel, provider_account_id, recipient, \
    recipient_is_user_id, body, faq_id, mark_read_message_id, next_attempt_at, created_at, \
    updated_at, purpose, customer_id, window_closes_at, claimed_until, attempts) \
    SELECT t, i, ik, c, m, ch, pa, r, ru, b, f, mr, na, $1, $1, p, cu, w, cl, at \
    FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::uuid[], $6::uuid[], $7::text[], \
    $8::text[], $9::text[], $10::bool[], $11::text[], $12::uuid[], $13::text[], \
    $14::timestamptz[], $15::text[], $16::text[], $17::timestamptz[], $18::timestamptz[], \
    $19::int8[]) \
    AS v (t, i, ik, c, m, ch, pa, r, ru, b, f, mr, na, p, cu, w, cl, at) ", $then)
    };
}

/// The pipeline's turns: a reply whose idempotency key is stored already (the turn of
/// a message decided again after a crash) keeps its first copy.
const WRITE_TURNS: &str =
    write_turns!("ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id");

/// The storing transaction's turns: their messages are inserted in the same
/// transaction, so their replies' keys, made of the message's id, are new (no arbiter
/// probe, no speculative insertion).
const WRITE_NEW_TURNS: &str = write_turns!("RETURNING id");

/// Which of these recipients have a pending message (which goes before anything new).
const PENDING_RECIPIENTS: &str = "SELECT DISTINCT o.tenant_id, o.channel, o.customer_id \
    FROM outbound_messages o \
    JOIN unnest($1::uuid[], $2::text[], $3::text[]) AS v (t, ch, cu) \
    ON o.tenant_id = v.t AND o.channel = v.ch AND o.customer_id = v.cu \
    WHERE o.state = 'pending'";

/// Replies sent ($1–$3, at $4) and the day's count of them ($5–$8), in one statement:
/// one round trip and one commit. The count reads the update's rows, so the replies
/// are updated before the usage row is locked, in the order a storing transaction
/// takes them (a status's reply, then the usage).
const MARK_SENT: &str = "WITH sent AS (UPDATE outbound_messages AS o SET state = 'sent', \
    claimed_until = NULL, sent_at = $4, updated_at = $4, provider_message_id = v.p, \
    delivery_status = CASE WHEN o.delivery_status = 'queued' THEN 'sent' ELSE o.delivery_status END \
    FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS v (t, i, p) \
    WHERE o.tenant_id = v.t AND o.id = v.i RETURNING 1) \
    INSERT INTO usage_daily (tenant_id, day, slot, outbound) \
    SELECT t, $7, $8, n FROM unnest($5::uuid[], $6::int8[]) AS v (t, n) \
    CROSS JOIN (SELECT count(*) FROM sent) AS done \
    ON CONFLICT (tenant_id, day, slot) DO UPDATE SET outbound = usage_daily.outbound + excluded.outbound";

const EARLY_STATUSES: &str = "SELECT s.tenant_id, s.provider_message_id, s.status, s.error_code \
    FROM message_statuses s JOIN unnest($1::uuid[], $2::text[]) AS v (t, p) \
    ON s.tenant_id = v.t AND s.provider_message_id = v.p";

/// Makes sure these rate counters exist (at 0), in key order, so that concurrent
/// batches create and then lock shared counters in the same order.
const ENSURE_COUNTERS: &str = "INSERT INTO rate_counters (tenant_id, scope, window_start, count) \
    SELECT t, s, w, 0 FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS v (t, s, w) \
    ORDER BY t, s, w ON CONFLICT (tenant_id, scope, window_start) DO NOTHING";

/// Reads and locks them, in key order, until the transaction ends.
const LOCK_COUNTERS: &str = "SELECT r.tenant_id, r.scope, r.window_start, r.count \
    FROM rate_counters r JOIN unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS v (t, s, w) \
    ON r.tenant_id = v.t AND r.scope = v.s AND r.window_start = v.w \
    ORDER BY r.tenant_id, r.scope, r.window_start FOR UPDATE OF r";

const SET_COUNTERS: &str = "UPDATE rate_counters r SET count = v.c \
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[]) AS v (t, s, w, c) \
    WHERE r.tenant_id = v.t AND r.scope = v.s AND r.window_start = v.w";

/// One column of a batch, for an array parameter.
fn column<'a, T, V>(items: &'a [T], f: impl Fn(&'a T) -> V) -> Vec<V> {
    items.iter().map(f).collect()
}

/// A JSON value as text, for a `::jsonb` cast on the server.
fn json_text<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| crate::store::StoreError::Other(e.to_string()))
}

impl PgStore {
    /// Inserts a webhook's messages; the number that were new.
    pub(super) async fn insert_inbound_arrays(
        conn: &mut PgConnection,
        rows: &[InboundRecord],
    ) -> Option<StoreResult<usize>> {
        Some(
            insert_inbound(conn, rows, &[], false)
                .await
                .map(|new| new.len()),
        )
    }

    /// `MessageStore::store_webhook_leasing` and, with `decide`,
    /// `MessageStore::store_webhook_deciding`, in one transaction (`store_deciding`).
    pub(super) async fn store_webhook_deciding_arrays(
        &self,
        messages: &[InboundRecord],
        statuses: &[StatusRecord],
        lease_until: DateTime<Utc>,
        decide: Option<Deciding>,
    ) -> Option<StoreResult<(usize, StoredLeased)>> {
        Some(
            self.store_deciding(messages, statuses, lease_until, decide)
                .await,
        )
    }

    /// `MessageStore::take_quotas` in one transaction of three statements, whatever the
    /// batch's size (`take_counters`, `write_counters`).
    pub(super) async fn take_quotas_arrays(
        &self,
        chains: &[Vec<QuotaAsk>],
    ) -> Option<StoreResult<Vec<Option<usize>>>> {
        Some(self.take_quotas_locked(chains).await)
    }

    async fn take_quotas_locked(
        &self,
        chains: &[Vec<QuotaAsk>],
    ) -> StoreResult<Vec<Option<usize>>> {
        if chains.iter().all(Vec::is_empty) {
            return Ok(vec![None; chains.len()]);
        }
        let mut tx = self.write_pool().begin().await?;
        let taken = take_counters(&mut tx, chains).await?;
        write_counters(&mut tx, &taken.changed).await?;
        tx.commit().await?;
        Ok(taken.reached)
    }

    /// All of a batch of turns, in one transaction.
    pub(super) async fn complete_inbound_arrays(
        &self,
        turns: &[TurnRecord],
        now: DateTime<Utc>,
    ) -> Option<StoreResult<()>> {
        Some(self.complete(turns, now, None).await.map(|_| ()))
    }

    /// As `complete_inbound_arrays`, leasing the replies that can go at once
    /// (`MessageStore::complete_inbound_leasing`).
    pub(super) async fn complete_inbound_leasing_arrays(
        &self,
        turns: &[TurnRecord],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Option<StoreResult<Vec<ClaimedOutbound>>> {
        Some(self.complete(turns, now, Some(lease_until)).await)
    }

    /// Records the sent messages among `results`: state, provider id, any status that
    /// arrived before the id was known, and the day's usage.
    pub(super) async fn mark_sent_arrays(
        conn: &mut PgConnection,
        results: &[SendResult],
        now: DateTime<Utc>,
    ) -> Option<StoreResult<()>> {
        Some(mark_sent(conn, results, now).await)
    }

    async fn complete(
        &self,
        turns: &[TurnRecord],
        now: DateTime<Utc>,
        lease_until: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<ClaimedOutbound>> {
        if turns.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write_pool().begin().await?;
        let conversations = turn_conversations(&mut tx, turns).await?;
        let leased =
            Self::write_turns(&mut tx, turns, &conversations, now, lease_until, true, None).await?;
        tx.commit().await?;
        Ok(leased)
    }

    /// Stores a webhook's events and leases each new message that is its customer's
    /// only pending one (as `claim_inbound` would pick it), reads those customers'
    /// conversations, and with `decide` decides the leased messages it can and writes
    /// their turns, all in one transaction, as the SQLite store's writer does
    /// (`sqlite_hot::HotWriter::store_webhook`). A decided message's row is inserted
    /// done, in its conversation: one version of the row and of its index entries
    /// instead of three (inserted, claimed, done), and no claim or second transaction.
    ///
    /// Transactions run side by side here, so each first takes its customers' locks
    /// (`LOCK_CUSTOMERS`): of two webhooks of one customer stored at once, the second
    /// then finds the first's message (pending, or done with its reply queued) and
    /// leaves its own to the pipeline, which keeps the customer's order.
    ///
    /// The rows it finds new (a customer's first conversation and contact, the
    /// messages, their replies) go in without `ON CONFLICT`. Should one be there after all
    /// (a contact left without a conversation, a row written meanwhile by a writer that
    /// does not take the customer's lock), the transaction fails on its unique key and
    /// the webhook is stored again in a second one that decides nothing and inserts its
    /// messages through `ON CONFLICT`, leaving them to the pipeline, whose writes all
    /// go through it.
    async fn store_deciding(
        &self,
        messages: &[InboundRecord],
        statuses: &[StatusRecord],
        lease_until: DateTime<Utc>,
        decide: Option<Deciding>,
    ) -> StoreResult<(usize, StoredLeased)> {
        match self
            .store_once(messages, statuses, lease_until, decide, false)
            .await
        {
            Err(crate::store::StoreError::Conflict(why)) => {
                // The first try's decisions were counted in `parley_decisions_total`;
                // the pipeline counts them again when it decides the messages.
                metrics::counter!("parley_store_retries_total").increment(1);
                tracing::warn!(%why, "a row found new was there after all; storing the webhook again for the pipeline");
                self.store_once(messages, statuses, lease_until, None, true)
                    .await
            }
            stored => stored,
        }
    }

    /// One try of `store_deciding`; `careful`: every row through `ON CONFLICT`.
    async fn store_once(
        &self,
        messages: &[InboundRecord],
        statuses: &[StatusRecord],
        lease_until: DateTime<Utc>,
        decide: Option<Deciding>,
        careful: bool,
    ) -> StoreResult<(usize, StoredLeased)> {
        let candidates = lease_candidates(messages);
        let mut locks: Vec<i32> = messages
            .iter()
            .map(|r| customer_lock(r.tenant_id, r.channel, &r.message.customer_id))
            .collect();
        locks.sort_unstable();
        locks.dedup();

        let mut tx = self.write_pool().begin().await?;
        if !locks.is_empty() {
            sqlx::query(LOCK_CUSTOMERS)
                .bind(CUSTOMER_LOCKS)
                .bind(&locks)
                .execute(&mut *tx)
                .await?;
        }
        // Replies are leased only when deciding here with a sending slot.
        let leases_replies = decide.as_ref().is_some_and(|(_, _, lease)| lease.is_some());
        let look: Vec<LookAhead> = if candidates.is_empty() {
            Vec::new()
        } else {
            let of = |f: fn(&InboundRecord) -> &str| -> Vec<&str> {
                candidates.iter().map(|&i| f(&messages[i])).collect()
            };
            sqlx::query_as(LOOK_AHEAD)
                .bind(column(&candidates, |&i| messages[i].tenant_id.0))
                .bind(of(|r| r.channel.as_str()))
                .bind(of(|r| r.message.provider_message_id.as_str()))
                .bind(of(|r| r.message.customer_id.as_str()))
                .bind(leases_replies)
                .fetch_all(&mut *tx)
                .await?
        };
        let candidate = |l: &LookAhead| {
            usize::try_from(l.n - 1)
                .ok()
                .and_then(|n| candidates.get(n))
                .map(|&i| &messages[i])
        };
        let key = |r: &InboundRecord| {
            (
                r.tenant_id.0,
                r.channel.as_str().to_string(),
                r.message.customer_id.clone(),
            )
        };
        let busy: HashSet<i64> = look.iter().filter(|l| l.busy()).map(|l| l.n).collect();
        let replying: Recipients = look
            .iter()
            .filter(|l| l.replying)
            .filter_map(candidate)
            .map(key)
            .collect();
        let leasing: Vec<usize> = candidates
            .iter()
            .enumerate()
            .filter(|(n, _)| !busy.contains(&(*n as i64 + 1)))
            .map(|(_, &i)| i)
            .collect();
        let mut leased: Vec<ClaimedInbound> = leasing
            .iter()
            .map(|&i| ClaimedInbound::leased_from(&messages[i]))
            .collect();
        // The leased messages' conversations (a busy message is not leased).
        let conversations: Vec<(ConversationKey, ConversationState)> = look
            .iter()
            .filter(|l| !l.busy())
            .filter_map(|l| {
                let r = candidate(l)?;
                let key = (r.tenant_id, r.channel, r.message.customer_id.clone());
                Some((key, l.conversation()?))
            })
            .collect();
        let (turns, now, reply_lease) = match decide.filter(|_| !leased.is_empty()) {
            Some((decide, now, reply_lease)) => (
                decide_now(&mut tx, decide, &leased, &conversations).await?,
                now,
                reply_lease,
            ),
            None => (Vec::new(), Utc::now(), None),
        };
        // The turns' contacts and conversations first: a decided message's row names
        // its conversation.
        let turn_convs = storing_conversations(&mut tx, &turns, &conversations).await?;
        let done: HashMap<Uuid, &TurnRecord> = turns.iter().map(|t| (t.inbound_id, t)).collect();
        let mut fates = vec![Fate::Pending; messages.len()];
        for &i in &leasing {
            let r = &messages[i];
            fates[i] = match done.get(&r.id) {
                Some(t) => Fate::Done {
                    conversation: conversation_of(&turn_convs, t),
                    keep_text: t.keep_text,
                    at: now,
                    decision: t.decision.as_ref(),
                },
                None => Fate::Leased(lease_until),
            };
        }
        // Every message of the batch looked up (each its customer's only one in it,
        // no id twice) and none stored before: then no arbiter probes. One customer
        // twice in the batch, or a redelivery, takes the whole batch through them.
        let fresh = !careful && candidates.len() == messages.len() && look.iter().all(|l| !l.seen);
        let inserted = insert_inbound(&mut tx, messages, &fates, fresh).await?;
        // Cannot happen (through `ON CONFLICT`) but for a message id stored at this
        // moment by a writer without this customer's lock (`store_webhook`, or another
        // customer's transaction with a forged copy): its turn must not be written for a
        // row that is not this. The webhook is stored again (`store_deciding`), which
        // finds the row. (Inserted without `ON CONFLICT`, the insert itself fails.)
        if leased.iter().any(|m| !inserted.contains(&m.id)) {
            return Err(crate::store::StoreError::Conflict(
                "a message leased as new was stored meanwhile".into(),
            ));
        }
        for s in statuses {
            Self::apply_status(&mut tx, s).await?;
        }
        let replies = Self::write_turns(
            &mut tx,
            &turns,
            &turn_convs,
            now,
            reply_lease,
            false,
            Some(&replying),
        )
        .await?;
        tx.commit().await?;
        // Left to the pipeline: the leased messages without a turn.
        leased.retain(|m| !done.contains_key(&m.id));
        Ok((
            inserted.len(),
            StoredLeased {
                messages: leased,
                conversations: Some(conversations),
                decided: turns,
                replies,
            },
        ))
    }

    /// Writes turns whose contacts and conversations are in `conversations`
    /// (`turn_conversations`, `storing_conversations`): the rarer extras, then
    /// replies (leasing, with `lease_until`, those that can go at once, which it
    /// returns; `replying`: the recipients with a reply pending, when the transaction
    /// has read them already), the messages marked done with their decisions unless
    /// they were inserted so (`mark_done`) and the day's usage, all in one statement:
    /// `WRITE_TURNS` for the pipeline, `WRITE_NEW_TURNS` (the replies' keys new) for
    /// the storing transaction, whose messages were inserted done.
    async fn write_turns(
        tx: &mut PgConnection,
        turns: &[TurnRecord],
        conversations: &Conversations,
        now: DateTime<Utc>,
        lease_until: Option<DateTime<Utc>>,
        mark_done: bool,
        replying: Option<&Recipients>,
    ) -> StoreResult<Vec<ClaimedOutbound>> {
        if turns.is_empty() {
            return Ok(Vec::new());
        }
        let conv = |t: &TurnRecord| conversation_of(conversations, t);

        // Inserted done here (the storing transaction), the turns' messages are new, and
        // so are their replies' keys; one key twice in the batch, which the pipeline's
        // `ON CONFLICT` would skip, is skipped here before it fails the statement.
        let new_keys = !mark_done;
        let mut keys = HashSet::new();
        let replies: Vec<(&TurnRecord, &OutboundRecord)> = turns
            .iter()
            .flat_map(|t| t.replies.iter().map(move |o| (t, o)))
            .filter(|(t, o)| !new_keys || keys.insert((t.tenant_id, o.idempotency_key.as_str())))
            .collect();
        // The recipients with a reply pending (read by the caller or here), before the
        // replies are written.
        let leases = match lease_until {
            Some(until) if !replies.is_empty() => {
                Self::leases(&mut *tx, &replies, now, until, replying).await?
            }
            _ => vec![None; replies.len()],
        };
        // The rarer extras (hand-offs, after-hours notices, notifications, merged
        // bursts) first: `WRITE_TURNS` takes the day's usage rows, shared by every
        // batch of a tenant, and their locks are then held only until the commit.
        Self::write_turn_extras(&mut *tx, turns, &conv, now).await?;
        // The messages marked done, with their decisions (inserted so by the storing
        // transaction).
        let finished: &[TurnRecord] = if mark_done { turns } else { &[] };
        let decisions = DecisionArrays::of(finished.iter().map(|t| t.decision.as_ref()))?;
        let usage = usage_per_tenant(turns);
        let sql = if new_keys {
            WRITE_NEW_TURNS
        } else {
            WRITE_TURNS
        };
        let inserted: HashSet<Uuid> = sqlx::query_scalar(sql)
            .bind(now)
            .bind(column(&replies, |(t, _)| t.tenant_id.0))
            .bind(column(&replies, |(_, o)| o.id))
            .bind(column(&replies, |(_, o)| o.idempotency_key.as_str()))
            .bind(column(&replies, |(t, _)| conv(t)))
            .bind(column(&replies, |(t, _)| t.inbound_id))
            .bind(column(&replies, |(t, _)| t.channel.as_str()))
            .bind(column(&replies, |(_, o)| o.provider_account_id.as_str()))
            .bind(column(&replies, |(_, o)| o.recipient.as_str()))
            .bind(column(&replies, |(_, o)| o.recipient_is_user_id))
            .bind(column(&replies, |(_, o)| o.body.as_str()))
            .bind(column(&replies, |(_, o)| o.faq_id))
            .bind(column(&replies, |(_, o)| o.mark_read_message_id.as_deref()))
            .bind(column(&replies, |(_, o)| o.next_attempt_at))
            .bind(column(&replies, |(_, o)| o.purpose))
            .bind(column(&replies, |(_, o)| o.customer_id.as_str()))
            .bind(column(&replies, |(_, o)| o.window_closes_at))
            .bind(&leases)
            .bind(column(&leases, |l| i64::from(l.is_some())))
            .bind(column(finished, |t| t.tenant_id.0))
            .bind(column(finished, |t| t.inbound_id))
            .bind(column(finished, conv))
            .bind(column(finished, |t| t.keep_text))
            .bind(decisions.reasons)
            .bind(decisions.faqs)
            .bind(decisions.scores)
            .bind(decisions.details)
            .bind(REDACTED_RAW)
            .bind(usage.keys().map(|t| t.0).collect::<Vec<_>>())
            .bind(usage.values().map(|u| u.inbound).collect::<Vec<_>>())
            .bind(usage.values().map(|u| u.faq_answers).collect::<Vec<_>>())
            .bind(usage.values().map(|u| u.llm_calls).collect::<Vec<_>>())
            .bind(usage.values().map(|u| u.tokens_in).collect::<Vec<_>>())
            .bind(usage.values().map(|u| u.tokens_out).collect::<Vec<_>>())
            .bind(now.date_naive())
            .bind(usage_slot())
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let leased = replies
            .iter()
            .zip(&leases)
            .filter(|((_, o), lease)| lease.is_some() && inserted.contains(&o.id))
            .map(|((t, o), _)| ClaimedOutbound::leased(t, o))
            .collect();
        Ok(leased)
    }

    /// The lease for each reply, in order: `until` for those that can go at once (as
    /// the sender's claim picks: due, its recipient's first in the batch, and no
    /// pending message of that recipient already; and only to the turn's own customer,
    /// whose turns never run side by side, while a staff notification may come from two
    /// instances at once), `None` for the rest. The recipients with a pending message
    /// are `replying` when the transaction has read them already (they are read for
    /// the turns' own customers, the only ones leased), else read here.
    async fn leases(
        tx: &mut PgConnection,
        replies: &[(&TurnRecord, &OutboundRecord)],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        replying: Option<&Recipients>,
    ) -> StoreResult<Vec<Option<DateTime<Utc>>>> {
        let mut first = HashSet::new();
        let candidate: Vec<bool> = replies
            .iter()
            .map(|(t, o)| {
                let first = first.insert((t.tenant_id, t.channel, o.customer_id.as_str()));
                first && o.customer_id == t.customer_id && o.next_attempt_at <= now
            })
            .collect();
        if !candidate.contains(&true) {
            return Ok(vec![None; replies.len()]);
        }
        let read;
        let busy = match replying {
            Some(known) => known,
            None => {
                read = sqlx::query_as(PENDING_RECIPIENTS)
                    .bind(column(replies, |(t, _)| t.tenant_id.0))
                    .bind(column(replies, |(t, _)| t.channel.as_str()))
                    .bind(column(replies, |(_, o)| o.customer_id.as_str()))
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect::<Recipients>();
                &read
            }
        };
        Ok(replies
            .iter()
            .zip(candidate)
            .map(|((t, o), candidate)| {
                let key = (
                    t.tenant_id.0,
                    t.channel.as_str().to_string(),
                    o.customer_id.clone(),
                );
                (candidate && !busy.contains(&key)).then_some(until)
            })
            .collect())
    }
}

/// How a message's row is inserted.
#[derive(Clone, Copy)]
enum Fate<'a> {
    /// Pending, for the pipeline to claim.
    Pending,
    /// Pending, leased until then (handed to the pipeline as it is stored).
    Leased(DateTime<Utc>),
    /// Decided in the storing transaction: done, in its conversation, with its decision
    /// (none when the tenant logs none), its text dropped unless the tenant keeps it.
    Done {
        conversation: Option<Uuid>,
        keep_text: bool,
        at: DateTime<Utc>,
        decision: Option<&'a DecisionRecord>,
    },
}

/// Inserts `rows`, each as its fate says (pending without one); the ids of the new ones.
/// `fresh`: every row was looked up under its customer's lock and found new
/// (`INSERT_NEW_INBOUND`).
async fn insert_inbound(
    conn: &mut PgConnection,
    rows: &[InboundRecord],
    fates: &[Fate<'_>],
    fresh: bool,
) -> StoreResult<HashSet<Uuid>> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let fate = |i: usize| fates.get(i).copied().unwrap_or(Fate::Pending);
    let redacted = |i: usize| {
        matches!(
            fate(i),
            Fate::Done {
                keep_text: false,
                ..
            }
        )
    };
    let media = rows
        .iter()
        .map(|r| r.message.media.as_ref().map(json_text).transpose())
        .collect::<StoreResult<Vec<_>>>()?;
    let raw = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if redacted(i) {
                return Ok(Some(REDACTED_RAW.to_string()));
            }
            raw_worth_keeping(&r.message)
                .then(|| json_text(&r.message.raw))
                .transpose()
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let body: Vec<Option<&str>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| r.message.text.as_deref().filter(|_| !redacted(i)))
        .collect();
    let mut states = Vec::with_capacity(rows.len());
    let mut claimed = Vec::with_capacity(rows.len());
    let mut attempts = Vec::with_capacity(rows.len());
    let mut conversations = Vec::with_capacity(rows.len());
    let mut processed = Vec::with_capacity(rows.len());
    let mut decisions = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        let (state, until, tries, conversation, at, decision) = match fate(i) {
            Fate::Pending => ("pending", None, 0_i64, None, None, None),
            Fate::Leased(until) => ("pending", Some(until), 1, None, None, None),
            Fate::Done {
                conversation,
                at,
                decision,
                ..
            } => ("done", None, 1, conversation, Some(at), decision),
        };
        states.push(state);
        claimed.push(until);
        attempts.push(tries);
        conversations.push(conversation);
        processed.push(at);
        decisions.push(decision);
    }
    let decisions = DecisionArrays::of(decisions.into_iter())?;
    let sql = if fresh {
        INSERT_NEW_INBOUND
    } else {
        INSERT_INBOUND
    };
    let new = sqlx::query_scalar(sql)
        .bind(column(rows, |r| r.tenant_id.0))
        .bind(column(rows, |r| r.id))
        .bind(column(rows, |r| r.channel.as_str()))
        .bind(column(rows, |r| r.message.provider_message_id.as_str()))
        .bind(column(rows, |r| r.message.provider_account_id.as_str()))
        .bind(column(rows, |r| r.message.customer_id.as_str()))
        .bind(column(rows, |r| r.message.customer_phone.as_deref()))
        .bind(column(rows, |r| r.message.customer_user_id.as_deref()))
        .bind(column(rows, |r| r.message.customer_name.as_deref()))
        .bind(column(rows, |r| r.message.kind.as_str()))
        .bind(body)
        .bind(column(rows, |r| r.message.reply_id.as_deref()))
        .bind(media)
        .bind(column(rows, |r| r.message.context_message_id.as_deref()))
        .bind(raw)
        .bind(column(rows, |r| r.message.timestamp))
        .bind(column(rows, |r| r.received_at))
        .bind(states)
        .bind(claimed)
        .bind(attempts)
        .bind(conversations)
        .bind(processed)
        .bind(decisions.reasons)
        .bind(decisions.faqs)
        .bind(decisions.scores)
        .bind(decisions.details)
        .fetch_all(&mut *conn)
        .await?;
    Ok(new.into_iter().collect())
}

/// Messages' decisions (or none) as the arrays of their four columns, for
/// `INSERT_INBOUND` (a row inserted done, decided when it was processed) and
/// `WRITE_TURNS` (`keep_first_decision`).
struct DecisionArrays<'a> {
    reasons: Vec<Option<&'a str>>,
    faqs: Vec<Option<Uuid>>,
    scores: Vec<Option<f64>>,
    details: Vec<Option<String>>,
}

impl<'a> DecisionArrays<'a> {
    fn of(decisions: impl Iterator<Item = Option<&'a DecisionRecord>>) -> StoreResult<Self> {
        let mut arrays = Self {
            reasons: Vec::new(),
            faqs: Vec::new(),
            scores: Vec::new(),
            details: Vec::new(),
        };
        for d in decisions {
            arrays.reasons.push(d.map(|d| d.reason.as_str()));
            arrays.faqs.push(d.and_then(|d| d.faq_id));
            arrays.scores.push(d.and_then(|d| d.score));
            arrays.details.push(
                d.and_then(|d| d.detail.as_ref())
                    .map(json_text)
                    .transpose()?,
            );
        }
        Ok(arrays)
    }
}

/// What `WRITE_TURNS` (marking a message done) and a row inserted done keep of a
/// message whose tenant logs no text.
const REDACTED_RAW: &str = redacted_raw!();

/// A customer's lock for `LOCK_CUSTOMERS`: FNV-1a of tenant, channel and customer id,
/// the same in every instance and build. Two customers may share one (they then only
/// wait for each other).
fn customer_lock(tenant: TenantId, channel: Channel, customer: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    let bytes = tenant
        .0
        .as_bytes()
        .iter()
        .chain(channel.as_str().as_bytes())
        .chain([&0u8]);
    for b in bytes.chain(customer.as_bytes()) {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h as i32
}

/// The conversation ids of turns' customers, by (tenant, channel, customer id).
type Conversations = HashMap<(Uuid, String, String), Uuid>;

/// Recipients (tenant, channel, customer) with a reply pending.
type Recipients = HashSet<(Uuid, String, String)>;

fn conversation_of(conversations: &Conversations, t: &TurnRecord) -> Option<Uuid> {
    conversations
        .get(&(
            t.tenant_id.0,
            t.channel.as_str().to_string(),
            t.customer_id.clone(),
        ))
        .copied()
}

/// Upserts the contact and the conversation of each customer of `turns` (once per
/// customer, with the first turn's times) and returns the conversations' ids.
async fn turn_conversations(
    tx: &mut PgConnection,
    turns: &[TurnRecord],
) -> StoreResult<Conversations> {
    if turns.is_empty() {
        return Ok(HashMap::new());
    }
    let unique = one_turn_per_customer(turns);
    let tenants: Vec<Uuid> = unique.iter().map(|t| t.tenant_id.0).collect();
    let channels: Vec<&str> = unique.iter().map(|t| t.channel.as_str()).collect();
    let customers: Vec<&str> = unique.iter().map(|t| t.customer_id.as_str()).collect();
    let received: Vec<DateTime<Utc>> = unique.iter().map(|t| t.received_at).collect();
    let rows: Vec<(Uuid, String, String, Uuid)> = sqlx::query_as(UPSERT_CUSTOMERS)
        .bind(&tenants)
        .bind(&channels)
        .bind(&customers)
        .bind(column(&unique, |t| t.customer_phone.as_deref()))
        .bind(column(&unique, |t| t.customer_user_id.as_deref()))
        .bind(column(&unique, |t| t.customer_name.as_deref()))
        .bind(&received)
        .bind(column(&unique, |_| Uuid::now_v7()))
        .fetch_all(&mut *tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, channel, customer, id)| ((tenant, channel, customer), id))
        .collect())
}

/// `turn_conversations` for the storing transaction, which has read the turns'
/// customers' conversations under their locks (`known`, from `LOOK_AHEAD`): a known
/// conversation is updated by its key and a new customer's contact and conversation
/// inserted, neither through `ON CONFLICT`'s arbiter probe and speculative insertion
/// (`STORE_CUSTOMERS`). A conversation deleted since
/// it was read (its tenant deleted meanwhile) fails the transaction, as does a
/// contact or conversation there after all (on its unique key), and the webhook is
/// stored again the careful way (`store_deciding`).
async fn storing_conversations(
    tx: &mut PgConnection,
    turns: &[TurnRecord],
    known: &[(ConversationKey, ConversationState)],
) -> StoreResult<Conversations> {
    if turns.is_empty() {
        return Ok(HashMap::new());
    }
    let known: HashMap<(Uuid, &str, &str), Uuid> = known
        .iter()
        .map(|((t, ch, cu), c)| ((t.0, ch.as_str(), cu.as_str()), c.id))
        .collect();
    let unique = one_turn_per_customer(turns);
    let ids: Vec<(Uuid, bool)> = unique
        .iter()
        .map(
            |t| match known.get(&(t.tenant_id.0, t.channel.as_str(), t.customer_id.as_str())) {
                Some(&id) => (id, true),
                None => (Uuid::now_v7(), false),
            },
        )
        .collect();
    let known_ones = ids.iter().filter(|(_, known)| *known).count();
    let updated: i64 = sqlx::query_scalar(STORE_CUSTOMERS)
        .bind(column(&unique, |t| t.tenant_id.0))
        .bind(column(&unique, |t| t.channel.as_str()))
        .bind(column(&unique, |t| t.customer_id.as_str()))
        .bind(column(&unique, |t| t.customer_phone.as_deref()))
        .bind(column(&unique, |t| t.customer_user_id.as_deref()))
        .bind(column(&unique, |t| t.customer_name.as_deref()))
        .bind(column(&unique, |t| t.received_at))
        .bind(column(&ids, |(id, _)| *id))
        .bind(column(&ids, |(_, known)| *known))
        .fetch_one(&mut *tx)
        .await?;
    if usize::try_from(updated).ok() != Some(known_ones) {
        return Err(crate::store::StoreError::Conflict(
            "a conversation was deleted while its message was stored".into(),
        ));
    }
    Ok(unique
        .iter()
        .zip(&ids)
        .map(|(t, (id, _))| {
            (
                (
                    t.tenant_id.0,
                    t.channel.as_str().to_string(),
                    t.customer_id.clone(),
                ),
                *id,
            )
        })
        .collect())
}

/// The pipeline's conversation lookup as one prepared statement over three arrays.
/// A row-value `IN` list has a different text for every batch size, so PostgreSQL
/// planned it afresh each time (~3.5 ms for 150 keys, the planner's most expensive
/// statement under load); this one is planned once. One probe of the unique key per
/// wanted conversation (`LATERAL`): as a plain join, the plan cached for the
/// statement hashed the keys and scanned every conversation whenever the table's
/// statistics were stale (~10 ms a lookup at 10,000 conversations, the server's
/// costliest statement at 2400 msg/s).
pub(super) async fn find_conversations<'c, E>(
    on: E,
    keys: &[ConversationKey],
) -> StoreResult<Vec<(ConversationKey, ConversationState)>>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let sql = format!(
        "SELECT c.tenant_id, c.channel, c.customer_id, {CONVERSATION_COLS} \
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS k (tenant_id, channel, customer_id) \
         CROSS JOIN LATERAL (SELECT * FROM conversations x WHERE x.tenant_id = k.tenant_id \
         AND x.channel = k.channel AND x.customer_id = k.customer_id) AS c"
    );
    let rows: Vec<ConversationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(column(keys, |k| k.0.0))
        .bind(column(keys, |k| k.1.as_str()))
        .bind(column(keys, |k| k.2.as_str()))
        .fetch_all(on)
        .await?;
    rows.into_iter()
        .map(ConversationRow::into_keyed_state)
        .collect()
}

/// Decides what `decide` can of the leased messages, taking their rate counters in
/// this transaction. A panic in the decider (a bug) leaves the messages to the
/// pipeline, with the counters as they were (read and locked, never written back).
async fn decide_now(
    tx: &mut PgConnection,
    mut decide: Box<dyn DecideNow>,
    leased: &[ClaimedInbound],
    conversations: &[(ConversationKey, ConversationState)],
) -> StoreResult<Vec<TurnRecord>> {
    let Some(asked) = prepare_or_leave(decide.as_mut(), leased, conversations) else {
        return Ok(Vec::new());
    };
    let taken = take_counters(tx, &asked).await?;
    match finish_or_leave(decide, taken.reached) {
        Some(turns) => {
            write_counters(tx, &taken.changed).await?;
            Ok(turns)
        }
        None => Ok(Vec::new()),
    }
}

/// Rate counters taken in memory (`take_from`): where each chain was refused, and the
/// counters' new values, for `write_counters`.
struct Taken {
    reached: Vec<Option<usize>>,
    changed: Vec<(CounterKey, i64)>,
}

/// Creates the chains' counters if new, reads and locks them (in key order, until the
/// transaction ends), and takes from them in the chains' order.
async fn take_counters(tx: &mut PgConnection, chains: &[Vec<QuotaAsk>]) -> StoreResult<Taken> {
    let mut keys: Vec<CounterKey> = chains.iter().flatten().map(counter_key).collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Ok(Taken {
            reached: vec![None; chains.len()],
            changed: Vec::new(),
        });
    }
    let tenants: Vec<Uuid> = keys.iter().map(|k| k.0.0).collect();
    let scopes: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let windows: Vec<DateTime<Utc>> = keys.iter().map(|k| k.2).collect();
    sqlx::query(ENSURE_COUNTERS)
        .bind(&tenants)
        .bind(&scopes)
        .bind(&windows)
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(Uuid, String, DateTime<Utc>, i64)> = sqlx::query_as(LOCK_COUNTERS)
        .bind(&tenants)
        .bind(&scopes)
        .bind(&windows)
        .fetch_all(&mut *tx)
        .await?;
    let before: HashMap<CounterKey, i64> = rows
        .into_iter()
        .map(|(t, s, w, c)| ((TenantId(t), s, w), c))
        .collect();
    let mut counts = before.clone();
    let reached = take_from(chains, &mut counts);
    let changed = counts
        .into_iter()
        .filter(|(k, c)| before.get(k) != Some(c))
        .collect();
    Ok(Taken { reached, changed })
}

/// Writes back the counters `take_counters` changed.
async fn write_counters(tx: &mut PgConnection, changed: &[(CounterKey, i64)]) -> StoreResult<()> {
    if changed.is_empty() {
        return Ok(());
    }
    sqlx::query(SET_COUNTERS)
        .bind(column(changed, |(k, _)| k.0.0))
        .bind(column(changed, |(k, _)| k.1.as_str()))
        .bind(column(changed, |(k, _)| k.2))
        .bind(column(changed, |(_, c)| *c))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn mark_sent(
    conn: &mut PgConnection,
    results: &[SendResult],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sent: Vec<(&SendResult, &str)> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            SendOutcome::Sent {
                provider_message_id,
            } => Some((r, provider_message_id.as_str())),
            _ => None,
        })
        .collect();
    if sent.is_empty() {
        return Ok(());
    }
    let tenants: Vec<Uuid> = sent.iter().map(|(r, _)| r.tenant_id.0).collect();
    let ids: Vec<&str> = sent.iter().map(|(_, id)| *id).collect();
    let per_tenant = sent_per_tenant(results);
    sqlx::query(MARK_SENT)
        .bind(&tenants)
        .bind(column(&sent, |(r, _)| r.id))
        .bind(&ids)
        .bind(now)
        .bind(per_tenant.keys().map(|t| t.0).collect::<Vec<_>>())
        .bind(per_tenant.values().copied().collect::<Vec<_>>())
        .bind(now.date_naive())
        .bind(usage_slot())
        .execute(&mut *conn)
        .await?;
    // Statuses that arrived before we learnt the ids.
    let early: Vec<(Uuid, String, String, Option<i64>)> = sqlx::query_as(EARLY_STATUSES)
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    for (tenant, id, status, code) in early {
        PgStore::advance_delivery(conn, TenantId(tenant), &id, &status, code, now).await?;
    }
    Ok(())
}
