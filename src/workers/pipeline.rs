//! The inbox worker: claims stored inbound messages, decides each (runtime), and
//! writes decisions and outbox rows in one transaction per batch. Turns that need the
//! tenant's LLM run as their own tasks (bounded), so a slow model never holds up FAQ
//! answers; their messages stay claimed meanwhile, and a crash leaves them to be
//! claimed again when the lease runs out. Woken at once by the webhook; a poll is the
//! safety net (and picks up expired leases and bursts that have gone quiet). On SQLite,
//! the turns that need nothing but what is in memory are decided inside the webhook's
//! own transaction instead (`DecideStored`), and never reach the pipeline.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::AppState;
use crate::cache::TenantContext;
use crate::runtime::{self, Step, TurnInput};
use crate::store::StoreError;
use crate::store::conversations::ConversationState;
use crate::store::messages::{ClaimedInbound, ConversationKey, Handoff, TurnRecord};
use crate::workers::followers::{Working, inbound_key, outbound_key};

/// Most messages claimed at once.
pub const BATCH: i64 = 256;

/// Claims and processes one batch; returns how many messages it handled.
pub async fn process_once(state: &AppState) -> Result<usize, StoreError> {
    let claimed = claim(state).await?;
    process(state, claimed).await
}

/// Leases up to `BATCH` inbound messages: each its customer's oldest pending one.
pub async fn claim(state: &AppState) -> Result<Vec<ClaimedInbound>, StoreError> {
    let now = state.clock.now();
    let lease = super::lease_until(now, state.config.work_lease);
    let claimed = state.store.claim_inbound(BATCH, now, lease).await?;
    state
        .inbox_followers
        .claimed(claimed.iter().map(inbound_key));
    Ok(claimed)
}

/// Decides a claimed batch and writes its turns; returns how many messages it handled.
pub async fn process(state: &AppState, claimed: Vec<ClaimedInbound>) -> Result<usize, StoreError> {
    process_known(state, claimed, None).await
}

/// As `process`, with the customers' conversations when they are known already (read
/// by the transaction that stored and leased the messages); else they are looked up.
pub async fn process_known(
    state: &AppState,
    claimed: Vec<ClaimedInbound>,
    known: Option<Vec<(ConversationKey, ConversationState)>>,
) -> Result<usize, StoreError> {
    if claimed.is_empty() {
        return Ok(0);
    }
    let now = state.clock.now();
    let keys: Vec<ConversationKey> = claimed.iter().map(inbound_key).collect();
    // Written (or given up) when this returns; a turn waiting for the LLM takes its
    // customer along and lets go when it is written.
    let mut working = state.inbox_followers.working(keys.clone());
    let conversations: HashMap<ConversationKey, ConversationState> = match known {
        Some(known) => known.into_iter().collect(),
        None => state
            .store
            .find_conversations(&keys)
            .await?
            .into_iter()
            .collect(),
    };
    // Decided first, then the replies' rate counters taken for the whole batch at once
    // (one write instead of one per reply), then the turns built.
    let mut decided = Vec::with_capacity(claimed.len());
    for (msg, key) in claimed.iter().zip(&keys) {
        let ctx = match state.cache.get(msg.tenant_id).await {
            Ok(Some(ctx)) => ctx,
            // Deleted meanwhile, and this message stored by a write that raced the
            // deletion (on PostgreSQL no key stops it, migration 0012): its tenant's
            // leftover rows go, so that nothing claims it again.
            Ok(None) => {
                super::sweep_deleted_tenant(state, msg.tenant_id).await;
                continue;
            }
            Err(e) => {
                // Left claimed: taken up again when the lease runs out.
                tracing::error!(tenant = %msg.tenant_id, error = %e, "pipeline: cannot load tenant");
                continue;
            }
        };
        let Some(Burst {
            text,
            merged,
            read_through,
        }) = gather_burst(state, &ctx, msg, now).await?
        else {
            continue;
        };
        let conv = conversations.get(key);
        let input = TurnInput {
            msg,
            text,
            conversation: conv,
            merged,
            read_through,
            email_enabled: state.email.is_some(),
        };
        let (step, handoff) = runtime::gate(&ctx, &msg.message, &input.text, conv, now);
        match step {
            Step::Done(outcome) => {
                count(&outcome);
                let asks = runtime::quota_asks(&ctx, &outcome, &msg.message.customer_id, now);
                decided.push(((ctx, input, outcome, handoff), asks));
            }
            Step::AskLlm {
                best_faq,
                best_score,
            } => {
                let job = LlmJob {
                    _working: working.split_off(key),
                    ctx,
                    msg: msg.clone(),
                    text: input.text,
                    merged: input.merged,
                    read_through: input.read_through,
                    conversation: conv.cloned(),
                    handoff,
                    best: (best_faq, best_score),
                };
                tokio::spawn(run_llm_turn(state.clone(), job));
            }
        }
    }
    let store = state.store.as_ref();
    let (decided, asks): (Vec<_>, Vec<_>) = decided.into_iter().unzip();
    let limits = runtime::take_limits(store, &asks).await?;
    let mut turns = Vec::with_capacity(decided.len());
    for ((ctx, input, outcome, handoff), limit) in decided.into_iter().zip(limits) {
        let turn =
            runtime::finish_limited(store, &ctx, &input, outcome, handoff, now, limit).await?;
        turns.push(turn);
    }
    write(state, &turns, now).await?;
    Ok(claimed.len())
}

/// Decides, in the transaction that stores them (`DecideNow`), the new messages whose
/// turn needs nothing but the tenant's settings and FAQs, the message and the
/// customer's conversation: what `process_known` would decide for them, without a second
/// transaction, a hand-over to the pipeline or a claim. Left to the pipeline: tenants
/// not given here, messages that may start a burst (`burst_window_seconds`), turns that
/// ask the LLM and escalations (telling the staff reads the store).
pub struct DecideStored {
    contexts: HashMap<crate::domain::TenantId, Arc<TenantContext>>,
    now: DateTime<Utc>,
    email_enabled: bool,
    prepared: Vec<Prepared>,
}

/// A message decided in `DecideStored::prepare`, waiting for its rate counters.
struct Prepared {
    ctx: Arc<TenantContext>,
    msg: ClaimedInbound,
    text: String,
    conversation: Option<ConversationState>,
    outcome: runtime::Outcome,
    handoff: Option<Handoff>,
    limits: Vec<&'static str>,
}

impl DecideStored {
    /// With the contexts of the tenants whose messages may be decided, at `now`.
    pub fn new(
        contexts: impl IntoIterator<Item = Arc<TenantContext>>,
        now: DateTime<Utc>,
        email_enabled: bool,
    ) -> Self {
        Self {
            contexts: contexts.into_iter().map(|c| (c.tenant.id, c)).collect(),
            now,
            email_enabled,
            prepared: Vec::new(),
        }
    }
}

impl crate::store::messages::DecideNow for DecideStored {
    fn prepare(
        &mut self,
        leased: &[ClaimedInbound],
        conversations: &[(ConversationKey, ConversationState)],
    ) -> Vec<Option<Vec<crate::store::messages::QuotaAsk>>> {
        let conversations: HashMap<&ConversationKey, &ConversationState> =
            conversations.iter().map(|(k, c)| (k, c)).collect();
        leased
            .iter()
            .map(|msg| {
                let ctx = self.contexts.get(&msg.tenant_id)?;
                if ctx.settings.burst_window_seconds != 0 && msg.message.kind.is_textual() {
                    return None;
                }
                let conv = conversations.get(&inbound_key(msg)).copied();
                let text = msg.message.text.clone().unwrap_or_default();
                let (step, handoff) = runtime::gate(ctx, &msg.message, &text, conv, self.now);
                let Step::Done(outcome) = step else {
                    return None;
                };
                if outcome.escalate.is_some() {
                    return None;
                }
                count(&outcome);
                let asks = runtime::quota_asks(ctx, &outcome, &msg.message.customer_id, self.now);
                let (limits, chain) = asks.into_iter().unzip();
                self.prepared.push(Prepared {
                    ctx: ctx.clone(),
                    msg: msg.clone(),
                    text,
                    conversation: conv.cloned(),
                    outcome,
                    handoff,
                    limits,
                });
                Some(chain)
            })
            .collect()
    }

    fn finish(self: Box<Self>, reached: Vec<Option<usize>>) -> Vec<TurnRecord> {
        let (now, email_enabled) = (self.now, self.email_enabled);
        self.prepared
            .into_iter()
            .zip(reached.into_iter().chain(std::iter::repeat(None)))
            .filter_map(|(p, refused)| {
                let input = TurnInput {
                    msg: &p.msg,
                    text: p.text,
                    conversation: p.conversation.as_ref(),
                    merged: Vec::new(),
                    read_through: None,
                    email_enabled,
                };
                let limit = refused.and_then(|i| p.limits.get(i).copied());
                runtime::finish_now(&p.ctx, &input, p.outcome, p.handoff, now, limit)
            })
            .collect()
    }
}

async fn write(
    state: &AppState,
    turns: &[TurnRecord],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if turns.is_empty() {
        return Ok(());
    }
    let replies: usize = turns.iter().map(|t| t.replies.len()).sum();
    // With a free sending slot, the replies that can go at once are leased in the same
    // transaction and sent from here, rather than claimed back by the sender: one
    // statement, one transaction and two thread hand-offs fewer a reply (README,
    // Benchmark). Without one, or for the rest, the sender claims them as before.
    let slot = match replies {
        0 => None,
        _ => state.send_slots.clone().try_acquire_owned().ok(),
    };
    let leased = match &slot {
        Some(_) => {
            let lease = super::lease_until(now, state.config.work_lease);
            state
                .store
                .complete_inbound_leasing(turns, now, lease)
                .await?
        }
        None => {
            state.store.complete_inbound(turns, now).await?;
            Vec::new()
        }
    };
    handed_on(state, turns, leased, slot);
    Ok(())
}

/// After turns are written: replies leased with them are in work and go to the sender
/// (holding `slot`); the others wait for the sender's claim, some of them behind one of
/// their customer's replies in work. Email notifications wake the notifier. Also for the
/// turns written with the webhook that brought their messages (`DecideStored`).
pub fn handed_on(
    state: &AppState,
    turns: &[TurnRecord],
    leased: Vec<crate::store::messages::ClaimedOutbound>,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let replies: usize = turns.iter().map(|t| t.replies.len()).sum();
    state
        .outbox_followers
        .taken(leased.iter().filter_map(outbound_key), false);
    if leased.len() < replies {
        let leased_ids: std::collections::HashSet<Uuid> = leased.iter().map(|o| o.id).collect();
        state.outbox_followers.arrived(
            turns
                .iter()
                .flat_map(|t| t.replies.iter().map(move |o| (t, o)))
                .filter(|(_, o)| !leased_ids.contains(&o.id))
                .map(|(t, o)| (t.tenant_id, t.channel, o.customer_id.clone())),
        );
        state.wake_sender.notify_one();
    }
    if let Some(slot) = slot
        && !leased.is_empty()
    {
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = super::sender::send(&state, leased).await {
                // Left leased: claimed and sent again when the lease runs out.
                tracing::error!(error = %e, "sender: send results not recorded");
            }
        });
    }
    if turns
        .iter()
        .any(|t| t.notifications.iter().any(|n| n.via == "email"))
    {
        state.wake_notifier.notify_one();
    }
}

fn count(outcome: &runtime::Outcome) {
    let kind = outcome.reason_kind().to_string();
    metrics::counter!("parley_decisions_total", "reason" => kind).increment(1);
}

/// A turn waiting for the tenant's LLM.
struct LlmJob {
    /// Its customer, let go when the turn is written (or given up).
    _working: Working,
    ctx: Arc<TenantContext>,
    msg: ClaimedInbound,
    text: String,
    merged: Vec<Uuid>,
    read_through: Option<String>,
    conversation: Option<ConversationState>,
    handoff: Option<Handoff>,
    best: (Option<crate::domain::TrainingItemId>, Option<f64>),
}

async fn run_llm_turn(state: AppState, job: LlmJob) {
    let _slot = state.llm_slots.clone().acquire_owned().await;
    let input = TurnInput {
        msg: &job.msg,
        text: job.text.clone(),
        conversation: job.conversation.as_ref(),
        merged: job.merged.clone(),
        read_through: job.read_through.clone(),
        email_enabled: state.email.is_some(),
    };
    let store = state.store.as_ref();
    let result = async {
        let now = state.clock.now();
        let outcome = runtime::ask_llm(store, &state.llm, &job.ctx, &input, job.best, now).await?;
        count(&outcome);
        let turn =
            runtime::finish(store, &job.ctx, &input, outcome, job.handoff.clone(), now).await?;
        write(&state, std::slice::from_ref(&turn), now).await
    }
    .await;
    if let Err(e) = result {
        // The message stays claimed and is taken up again when its lease runs out.
        tracing::warn!(tenant = %job.ctx.tenant.slug, error = %e, "pipeline: llm turn not written");
    }
}

/// What a turn answers: one message, or a burst of them.
struct Burst {
    /// The text answered (a burst's texts joined).
    text: String,
    /// The later messages merged into the first.
    merged: Vec<Uuid>,
    /// The provider's id of the newest merged message, if any.
    read_through: Option<String>,
}

/// The text to answer for `msg`: its own, or, when the tenant merges bursts, its own
/// and that of the customer's text messages right after it. `None` while the customer
/// is still typing (the message is left claimed until the burst window has passed).
async fn gather_burst(
    state: &AppState,
    ctx: &TenantContext,
    msg: &ClaimedInbound,
    now: DateTime<Utc>,
) -> Result<Option<Burst>, StoreError> {
    let own = msg.message.text.clone().unwrap_or_default();
    let window = ctx.settings.burst_window_seconds;
    if window == 0 || !msg.message.kind.is_textual() {
        return Ok(Some(Burst {
            text: own,
            merged: Vec::new(),
            read_through: None,
        }));
    }
    let later = state
        .store
        .pending_after(msg.tenant_id, msg.channel, &msg.message.customer_id, msg.id)
        .await?;
    let newest = later
        .iter()
        .map(|m| m.received_at)
        .chain([msg.received_at])
        .max()
        .unwrap_or(msg.received_at);
    let quiet_from = newest + chrono::Duration::seconds(window);
    if now < quiet_from {
        state
            .store
            .defer_claim(msg.tenant_id, msg.id, quiet_from)
            .await?;
        return Ok(None);
    }
    let mut texts = vec![own];
    let mut merged = Vec::new();
    let mut read_through = None;
    for m in later.iter().take_while(|m| {
        m.message.kind.is_textual()
            && m.message.kind != crate::domain::message::MessageKind::Reaction
    }) {
        texts.push(m.message.text.clone().unwrap_or_default());
        merged.push(m.id);
        read_through = Some(m.message.provider_message_id.clone());
    }
    Ok(Some(Burst {
        text: texts.join("\n"),
        merged,
        read_through,
    }))
}
