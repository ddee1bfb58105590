//! One conversation turn: policy → FAQ → decision → outbox row. `decide` is pure;
//! `process` adds what needs the store (shared rate limits) and builds the records
//! the pipeline writes in one transaction.

mod turn;

pub use turn::{Outcome, decide};

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use uuid::Uuid;

use crate::cache::TenantContext;
use crate::store::messages::{ClaimedInbound, DecisionRecord, OutboundRecord, TurnRecord};
use crate::store::{Store, StoreResult};

/// Decides one claimed message and returns what to write for it.
pub async fn process(
    store: &dyn Store,
    ctx: &TenantContext,
    msg: &ClaimedInbound,
    now: DateTime<Utc>,
) -> StoreResult<(TurnRecord, &'static str)> {
    let mut outcome = decide(ctx, &msg.message);
    if outcome.reply.is_some()
        && let Some(limited) = over_limit(store, ctx, &msg.message.customer_id, now).await?
    {
        outcome =
            Outcome::no_reply("rate_limited").with_detail(serde_json::json!({ "limit": limited }));
    }
    let reason = outcome.reason;
    let settings = &ctx.settings;
    let reply = match (&outcome.reply, &ctx.whatsapp) {
        (Some(text), Some(_)) => Some(OutboundRecord {
            id: Uuid::now_v7(),
            idempotency_key: format!("reply:{}", msg.id),
            provider_account_id: msg.message.provider_account_id.clone(),
            recipient: msg
                .message
                .customer_phone
                .clone()
                .unwrap_or_else(|| msg.message.customer_id.clone()),
            recipient_is_user_id: msg.message.customer_phone.is_none(),
            body: text.clone(),
            faq_id: outcome.faq_id.map(|f| f.0),
            mark_read_message_id: Some(msg.message.provider_message_id.clone()),
            next_attempt_at: now,
        }),
        _ => None,
    };
    let decision = settings.log_decisions.then(|| DecisionRecord {
        id: Uuid::now_v7(),
        reason: outcome.reason.to_string(),
        faq_id: outcome.faq_id.map(|f| f.0),
        score: outcome.score,
        detail: outcome.detail.clone(),
    });
    let m = &msg.message;
    Ok((
        TurnRecord {
            tenant_id: msg.tenant_id,
            inbound_id: msg.id,
            channel: msg.channel,
            customer_id: m.customer_id.clone(),
            customer_phone: m.customer_phone.clone(),
            customer_user_id: m.customer_user_id.clone(),
            customer_name: m.customer_name.clone(),
            received_at: msg.received_at,
            decision,
            reply,
            keep_text: settings.log_message_text,
        },
        reason,
    ))
}

/// Takes one reply from the tenant's hourly and the customer's daily allowance;
/// returns which limit was reached, if one was. Counted in the database, so every
/// instance shares the count. Windows follow the tenant's time zone.
async fn over_limit(
    store: &dyn Store,
    ctx: &TenantContext,
    customer: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<&'static str>> {
    let s = &ctx.settings;
    let tz: chrono_tz::Tz = ctx.tenant.timezone.parse().unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&tz);
    if let Some(limit) = s.max_messages_per_user_per_day {
        let day = tz
            .with_ymd_and_hms(local.year(), local.month(), local.day(), 0, 0, 0)
            .earliest()
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(now);
        let scope = format!("user_day:{customer}");
        if !store.take_quota(ctx.tenant.id, &scope, day, limit).await? {
            return Ok(Some("max_messages_per_user_per_day"));
        }
    }
    if let Some(limit) = s.max_messages_per_hour {
        let hour = now
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now);
        if !store
            .take_quota(ctx.tenant.id, "tenant_hour", hour, limit)
            .await?
        {
            return Ok(Some("max_messages_per_hour"));
        }
    }
    Ok(None)
}
