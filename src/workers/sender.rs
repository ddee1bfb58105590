//! The outbox worker: claims due replies, sends them through the tenant's channel
//! with the tenant's token, and records the outcome: sent (with the provider's id),
//! retried later with exponential backoff and jitter, failed for good, or given up.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt, stream};

use super::followers::outbound_key;
use crate::app::AppState;
use crate::channels::whatsapp;
use crate::domain::Channel;
use crate::domain::message::SendFailure;
use crate::store::messages::{ClaimedOutbound, SendOutcome, SendResult};

/// Most messages claimed at once.
pub const BATCH: i64 = 256;
/// Longest text put into a template's body parameter.
const TEMPLATE_PARAM_CHARS: usize = 1000;
/// Sends in flight at once per batch: the whole batch, so that a batch waits for one
/// Graph API round trip, not several (Meta answers in 100–300 ms from most places).
pub const IN_FLIGHT: usize = BATCH as usize;
/// Read receipts in flight on tasks of their own at most; beyond that, a send waits for
/// its receipt itself.
pub const READ_RECEIPTS: usize = 1024;

/// Claims, sends and records one batch; returns how many messages it handled.
pub async fn send_once(state: &AppState) -> Result<usize, crate::store::StoreError> {
    let claimed = claim(state).await?;
    send(state, claimed).await
}

/// Leases up to `BATCH` due messages: each its customer's oldest pending one.
pub async fn claim(state: &AppState) -> Result<Vec<ClaimedOutbound>, crate::store::StoreError> {
    let now = state.clock.now();
    let lease = super::lease_until(now, state.config.work_lease);
    let claimed = state.store.claim_outbound(BATCH, now, lease).await?;
    state
        .outbox_followers
        .claimed(claimed.iter().filter_map(outbound_key));
    Ok(claimed)
}

/// Sends a claimed batch and records the outcomes; returns how many it handled.
pub async fn send(
    state: &AppState,
    claimed: Vec<ClaimedOutbound>,
) -> Result<usize, crate::store::StoreError> {
    if claimed.is_empty() {
        return Ok(0);
    }
    let n = claimed.len();
    // Sent and recorded (or given up) when this returns.
    let _working = state
        .outbox_followers
        .working(claimed.iter().filter_map(outbound_key).collect());
    // Polled here rather than spawned: no task, join handle and wake-up per message.
    let (results, receipts): (Vec<SendResult>, Vec<Option<Receipt>>) = stream::iter(claimed)
        .map(|msg| AssertUnwindSafe(send_one(state, msg)).catch_unwind())
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|r| async move {
            // A send that panicked stays leased and is tried again when its lease runs out.
            r.inspect_err(|_| tracing::error!("sender: a send panicked"))
                .ok()
        })
        .unzip()
        .await;
    // Recorded first: the receipts may be sent here, and nothing about them may delay
    // (or, failing, undo) the record of what was sent.
    let recorded = state
        .store
        .record_send_results(&results, state.clock.now())
        .await;
    mark_read(state, receipts.into_iter().flatten().collect()).await;
    recorded?;
    Ok(n)
}

/// A read receipt owed for a sent reply: the customer's message, marked read through
/// the number that received it.
struct Receipt {
    tenant: crate::domain::TenantId,
    account: String,
    token: secrecy::SecretString,
    message_id: String,
}

async fn send_one(state: &AppState, msg: ClaimedOutbound) -> (SendResult, Option<Receipt>) {
    let (outcome, receipt) = attempt(state, &msg).await;
    let label = match &outcome {
        SendOutcome::Sent { .. } => "sent",
        SendOutcome::Retry { .. } => "retry",
        SendOutcome::Failed { .. } => "failed",
        SendOutcome::Dead { .. } => "dead",
        SendOutcome::Unsendable { .. } => "unsendable",
    };
    metrics::counter!("parley_outbound_total", "outcome" => label).increment(1);
    let result = SendResult {
        tenant_id: msg.tenant_id,
        id: msg.id,
        outcome,
    };
    (result, receipt)
}

/// Sends a message; with the outcome, the read receipt it owes when it was sent.
async fn attempt(state: &AppState, msg: &ClaimedOutbound) -> (SendOutcome, Option<Receipt>) {
    let ctx = match state.cache.get(msg.tenant_id).await {
        Ok(Some(ctx)) => ctx,
        Ok(None) => {
            // A reply queued by a write that raced its tenant's deletion: the tenant's
            // leftover rows go (`Store::sweep_deleted_tenant`).
            super::sweep_deleted_tenant(state, msg.tenant_id).await;
            return (failed(None, "tenant no longer exists"), None);
        }
        Err(e) => {
            let retry = retry_later(state, msg, None, format!("tenant cannot be loaded: {e}"));
            return (retry, None);
        }
    };
    let outcome = attempt_with(state, msg, &ctx).await;
    // Only a reply that went out owes its customer a blue tick, through the number and
    // with the token it went out with.
    let receipt = match (&outcome, &msg.mark_read_message_id, &ctx.whatsapp) {
        (SendOutcome::Sent { .. }, Some(read), Some(wa)) => Some(Receipt {
            tenant: msg.tenant_id,
            account: msg.provider_account_id.clone(),
            token: wa.access_token.clone(),
            message_id: read.clone(),
        }),
        _ => None,
    };
    (outcome, receipt)
}

async fn attempt_with(
    state: &AppState,
    msg: &ClaimedOutbound,
    ctx: &crate::cache::TenantContext,
) -> SendOutcome {
    if !ctx.tenant.active {
        return failed(None, "tenant is disabled");
    }
    let Some(wa) = ctx
        .whatsapp
        .as_ref()
        .filter(|_| msg.channel == Channel::Whatsapp)
    else {
        return failed(None, "the tenant has no account on this channel");
    };
    state
        .shaper
        .acquire(
            &msg.provider_account_id,
            wa.account.messages_per_second as f64,
        )
        .await;
    let body = match msg.window_closes_at {
        // WhatsApp's 24-hour rule: outside the customer service window only an approved
        // template may be sent; text would fail with 131047.
        Some(closes) if state.clock.now() >= closes => match &ctx.settings.window_template {
            Some(t) => whatsapp::template_message_body(
                &msg.recipient,
                msg.recipient_is_user_id,
                &t.name,
                &t.language,
                &[crate::runtime::trim_to(&msg.body, TEMPLATE_PARAM_CHARS)],
            ),
            None => {
                return SendOutcome::Unsendable {
                    reason: "window_closed: the 24-hour window has closed and the tenant has \
                             no approved template (settings.window_template)"
                        .into(),
                };
            }
        },
        _ => whatsapp::text_message_body(&msg.recipient, msg.recipient_is_user_id, &msg.body, None),
    };
    match state
        .graph
        .send(&msg.provider_account_id, &wa.access_token, &body)
        .await
    {
        Ok(provider_message_id) => SendOutcome::Sent {
            provider_message_id,
        },
        Err(e) => {
            let message = e
                .title
                .clone()
                .unwrap_or_else(|| format!("HTTP {}", e.http_status));
            match e.class {
                SendFailure::Permanent => failed(e.code, &message),
                SendFailure::TokenExpired => {
                    tracing::error!(tenant = %ctx.tenant.slug, "WhatsApp token expired or revoked (Meta code {:?}); replies stop until it is replaced", e.code);
                    if let Err(err) = state
                        .store
                        .mark_token_expired(msg.tenant_id, msg.channel)
                        .await
                    {
                        tracing::warn!(error = %err, "could not record the expired token");
                    }
                    failed(e.code, &message)
                }
                SendFailure::PairRateLimited => {
                    // Meta: retry the same recipient after 4^X seconds.
                    let secs = 4i64.saturating_pow(msg.attempts.saturating_sub(1).min(6) as u32);
                    retry_at(
                        state,
                        msg,
                        e.code,
                        message,
                        state.clock.now() + chrono::Duration::seconds(secs),
                    )
                }
                SendFailure::Retryable => retry_later(state, msg, e.code, message),
            }
        }
    }
}

/// Marks the customers' messages read, once their replies went out. Best effort: a
/// missing blue tick is not worth a retry. A batch's receipts go out together on one
/// task of their own (one task a batch, not one a receipt), so the batch (and the slot
/// it holds) does not wait a second Graph API round trip for them; with
/// `READ_RECEIPTS` already in flight, they are sent here instead.
async fn mark_read(state: &AppState, receipts: Vec<Receipt>) {
    if receipts.is_empty() {
        return;
    }
    async fn send_all(state: &AppState, receipts: Vec<Receipt>) {
        let calls: Vec<_> = receipts
            .iter()
            .map(|r| whatsapp::ReadReceipt {
                phone_number_id: &r.account,
                token: &r.token,
                message_id: &r.message_id,
            })
            .collect();
        let sent = state.graph.mark_read_all(&calls).await;
        for (r, sent) in receipts.iter().zip(sent) {
            if let Err(e) = sent {
                tracing::debug!(tenant = %r.tenant, code = ?e.code, "mark as read failed");
            }
        }
    }
    let n = u32::try_from(receipts.len()).unwrap_or(u32::MAX);
    match state.receipt_slots.clone().try_acquire_many_owned(n) {
        Ok(slots) => {
            let state = state.clone();
            tokio::spawn(async move {
                let _slots = slots;
                send_all(&state, receipts).await;
            });
        }
        Err(_) => send_all(state, receipts).await,
    }
}

fn failed(code: Option<i64>, message: &str) -> SendOutcome {
    SendOutcome::Failed {
        code,
        message: message.to_string(),
    }
}

fn retry_later(
    state: &AppState,
    msg: &ClaimedOutbound,
    code: Option<i64>,
    message: String,
) -> SendOutcome {
    let at = state.clock.now() + backoff(msg.attempts, state.config.retry_base);
    retry_at(state, msg, code, message, at)
}

fn retry_at(
    state: &AppState,
    msg: &ClaimedOutbound,
    code: Option<i64>,
    message: String,
    at: DateTime<Utc>,
) -> SendOutcome {
    if msg.attempts >= state.config.max_send_attempts {
        SendOutcome::Dead { code, message }
    } else {
        SendOutcome::Retry { at, code, message }
    }
}

/// Exponential backoff with full jitter: a random delay in [base·2^(n-1)/2, base·2^(n-1)],
/// capped at 10 minutes.
pub fn backoff(attempt: i64, base: Duration) -> chrono::Duration {
    let exp = base.as_secs_f64() * 2f64.powi(attempt.clamp(1, 20) as i32 - 1);
    let capped = exp.min(600.0);
    let mut b = [0u8; 4];
    let r = if getrandom::fill(&mut b).is_ok() {
        u32::from_le_bytes(b) as f64 / u32::MAX as f64
    } else {
        0.5
    };
    let secs = capped / 2.0 + r * capped / 2.0;
    chrono::Duration::milliseconds((secs * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        for attempt in 1..=12 {
            let d = backoff(attempt, base).num_milliseconds() as f64 / 1000.0;
            let full = (2f64.powi(attempt as i32 - 1)).min(600.0);
            assert!(
                d >= full / 2.0 - 0.001 && d <= full + 0.001,
                "attempt {attempt}: {d}"
            );
        }
    }
}
