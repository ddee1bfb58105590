//! One conversation turn: policy → FAQ → LLM → decision → outbox rows. `turn::gate`
//! decides what needs no model; `ask_llm` consults the tenant's own provider; `finish`
//! applies quiet hours, delays, rate limits and escalation, and builds the records the
//! pipeline writes in one transaction.

mod escalation;
mod llm_turn;
mod schedule;
mod turn;

pub use llm_turn::ask_llm;
pub use turn::{Outcome, Step, fallback, gate, judge_llm_answer, trim_to};

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::cache::TenantContext;
use crate::store::conversations::ConversationState;
use crate::store::messages::{
    ClaimedInbound, DecisionRecord, Handoff, NotificationRecord, OutboundRecord, QuotaAsk,
    TurnRecord,
};
use crate::store::{Store, StoreResult};

/// Meta's limit on a text message body.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The longest answer this tenant sends (its default template's limit, and Meta's).
pub fn max_answer_chars(ctx: &TenantContext) -> usize {
    ctx.default_template()
        .and_then(|t| t.max_response_length)
        .map(|m| (m.max(1) as usize).min(MAX_TEXT_CHARS))
        .unwrap_or(MAX_TEXT_CHARS)
}

/// Everything a turn works on.
pub struct TurnInput<'a> {
    pub msg: &'a ClaimedInbound,
    /// The text answered: the message's, or a burst's texts joined.
    pub text: String,
    pub conversation: Option<&'a ConversationState>,
    /// Later messages of the same burst, answered with this one.
    pub merged: Vec<Uuid>,
    /// The provider's id of the burst's newest message, when later ones were merged:
    /// the reply marks that one read (Meta marks the earlier ones read with it).
    pub read_through: Option<String>,
    /// This server can send email (an SMTP relay is configured).
    pub email_enabled: bool,
}

/// Turns an outcome into what the pipeline writes: the decision, the messages to send
/// (when, and with which window), the hand-off and the usage.
pub async fn finish(
    store: &dyn Store,
    ctx: &TenantContext,
    input: &TurnInput<'_>,
    outcome: Outcome,
    handoff: Option<Handoff>,
    now: DateTime<Utc>,
) -> StoreResult<TurnRecord> {
    let asks = quota_asks(ctx, &outcome, &input.msg.message.customer_id, now);
    let reached = take_limits(store, &[asks]).await?.pop().flatten();
    finish_limited(store, ctx, input, outcome, handoff, now, reached).await
}

/// Takes several turns' rate counters (`quota_asks` each) at once, in order
/// (`MessageStore::take_quotas`); returns, per turn, the limit it ran into, if any.
pub async fn take_limits(
    store: &dyn Store,
    asks: &[Vec<(&'static str, QuotaAsk)>],
) -> StoreResult<Vec<Option<&'static str>>> {
    let chains: Vec<Vec<QuotaAsk>> = asks
        .iter()
        .map(|a| a.iter().map(|(_, q)| q.clone()).collect())
        .collect();
    if chains.iter().all(Vec::is_empty) {
        return Ok(vec![None; chains.len()]);
    }
    let reached = store.take_quotas(&chains).await?;
    Ok(asks
        .iter()
        .zip(reached)
        .map(|(a, r)| r.and_then(|i| a.get(i)).map(|(name, _)| *name))
        .collect())
}

/// As `finish`, with the rate counters already taken (`quota_asks`, then
/// `MessageStore::take_quotas` for a whole batch): `reached` names the limit the reply
/// ran into, if it did.
pub async fn finish_limited(
    store: &dyn Store,
    ctx: &TenantContext,
    input: &TurnInput<'_>,
    outcome: Outcome,
    handoff: Option<Handoff>,
    now: DateTime<Utc>,
    reached: Option<&'static str>,
) -> StoreResult<TurnRecord> {
    let (outcome, plan) = limit_and_plan(ctx, input, outcome, now, reached);
    let staff = match &outcome.escalate {
        Some(category) if ctx.whatsapp.is_some() => {
            Some(notify_staff(store, ctx, input, category, plan.send_at, now).await?)
        }
        _ => None,
    };
    Ok(assemble(ctx, input, outcome, plan, handoff, now, staff))
}

/// As `finish_limited`, for a turn that needs nothing more from the store: `None` for
/// an escalation (telling the staff reads the store), which `finish_limited` builds.
pub fn finish_now(
    ctx: &TenantContext,
    input: &TurnInput<'_>,
    outcome: Outcome,
    handoff: Option<Handoff>,
    now: DateTime<Utc>,
    reached: Option<&'static str>,
) -> Option<TurnRecord> {
    let (outcome, plan) = limit_and_plan(ctx, input, outcome, now, reached);
    if outcome.escalate.is_some() && ctx.whatsapp.is_some() {
        return None;
    }
    Some(assemble(ctx, input, outcome, plan, handoff, now, None))
}

/// The outcome once the rate limit it ran into (if any) is applied, and when to send.
fn limit_and_plan(
    ctx: &TenantContext,
    input: &TurnInput<'_>,
    mut outcome: Outcome,
    now: DateTime<Utc>,
    reached: Option<&'static str>,
) -> (Outcome, schedule::SendPlan) {
    outcome.usage.inbound = 1 + input.merged.len() as i64;
    if let Some(limited) = reached {
        let usage = outcome.usage;
        outcome = Outcome::no_reply("rate_limited").with_detail(json!({ "limit": limited }));
        outcome.usage = usage;
    }
    let plan = schedule::plan(ctx, input.conversation, &outcome, now);
    (outcome, plan)
}

/// The turn's records, with the staff's notifications for an escalation.
fn assemble(
    ctx: &TenantContext,
    input: &TurnInput<'_>,
    mut outcome: Outcome,
    plan: schedule::SendPlan,
    mut handoff: Option<Handoff>,
    now: DateTime<Utc>,
    staff: Option<(Vec<OutboundRecord>, Vec<NotificationRecord>)>,
) -> TurnRecord {
    let msg = input.msg;
    let m = &msg.message;
    let s = &ctx.settings;
    let window = window_for(msg);
    let mut replies = Vec::new();
    let mut notifications = Vec::new();
    let mut notice_night = None;
    let recipient = m
        .customer_phone
        .clone()
        .unwrap_or_else(|| m.customer_id.clone());
    let out = |key: &str, purpose: &'static str, body: &str, at: DateTime<Utc>| OutboundRecord {
        id: Uuid::now_v7(),
        idempotency_key: format!("{key}:{}", msg.id),
        provider_account_id: m.provider_account_id.clone(),
        recipient: recipient.clone(),
        recipient_is_user_id: m.customer_phone.is_none(),
        body: body.to_string(),
        faq_id: None,
        mark_read_message_id: None,
        next_attempt_at: at,
        purpose,
        customer_id: m.customer_id.clone(),
        window_closes_at: Some(window),
    };
    if ctx.whatsapp.is_some() {
        if let Some((night, text)) = &plan.notice {
            replies.push(out("notice", "notice", text, now));
            notice_night = Some(*night);
        }
        if outcome.escalate.is_some() {
            replies.push(out("ack", "ack", s.escalation_ack_text(), plan.send_at));
            handoff = Some(Handoff::ToHuman {
                reason: outcome.reason.clone(),
            });
            if let Some((sends, notes)) = staff {
                replies.extend(sends);
                notifications = notes;
            }
        } else if let Some(text) = &outcome.reply {
            let delay = chrono::Duration::seconds(s.response_delay_seconds);
            let mut r = out("reply", "reply", text, plan.send_at.max(now + delay));
            r.faq_id = outcome.faq_id.map(|f| f.0);
            replies.push(r);
        }
        // Mark the customer's message (a burst's newest) read with the first thing we
        // send them.
        if let Some(first) = replies.iter_mut().find(|r| r.purpose != "notification") {
            let read = input
                .read_through
                .as_ref()
                .unwrap_or(&m.provider_message_id);
            first.mark_read_message_id = Some(read.clone());
        }
    }
    if let Some(reason) = plan.reason {
        let mut detail = outcome.detail.take().unwrap_or_else(|| json!({}));
        if let Some(d) = detail.as_object_mut() {
            d.insert("answer_reason".into(), json!(outcome.reason));
            d.insert("send_at".into(), json!(plan.send_at));
        }
        outcome.detail = Some(detail);
        if outcome.escalate.is_none() {
            outcome.reason = reason.to_string();
        }
    }
    let decision = s.log_decisions.then(|| DecisionRecord {
        reason: outcome.reason.clone(),
        faq_id: outcome.faq_id.map(|f| f.0),
        score: outcome.score,
        detail: outcome.detail.clone(),
    });
    TurnRecord {
        tenant_id: msg.tenant_id,
        inbound_id: msg.id,
        channel: msg.channel,
        customer_id: m.customer_id.clone(),
        customer_phone: m.customer_phone.clone(),
        customer_user_id: m.customer_user_id.clone(),
        customer_name: m.customer_name.clone(),
        received_at: msg.received_at,
        conversation_id: input.conversation.map(|c| c.id),
        decision,
        replies,
        keep_text: s.log_message_text,
        handoff,
        notice_night,
        notifications,
        usage: outcome.usage,
        merged: input.merged.clone(),
    }
}

/// The end of the customer service window this message opened: 24 hours after the
/// customer wrote (Meta's timestamp when it is plausible, else when we received it).
fn window_for(msg: &ClaimedInbound) -> DateTime<Utc> {
    let sent = Utc
        .timestamp_opt(msg.message.timestamp, 0)
        .single()
        .filter(|t| *t <= msg.received_at + chrono::Duration::minutes(5))
        .unwrap_or(msg.received_at);
    sent + crate::domain::quiet::SERVICE_WINDOW
}

/// The tenant's escalation contacts, told that a conversation needs a person: a
/// WhatsApp message to the escalation phone through the tenant's number (inside that
/// number's own 24-hour window, else the approved template), and the email address
/// recorded (email delivery needs an SMTP relay; see README).
async fn notify_staff(
    store: &dyn Store,
    ctx: &TenantContext,
    input: &TurnInput<'_>,
    category: &str,
    send_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<(Vec<OutboundRecord>, Vec<NotificationRecord>)> {
    let s = &ctx.settings;
    let msg = input.msg;
    let m = &msg.message;
    let mut sends = Vec::new();
    let mut notes = Vec::new();
    let who = m
        .customer_name
        .as_deref()
        .map(|n| {
            format!(
                "{n} (+{})",
                m.customer_phone.as_deref().unwrap_or(&m.customer_id)
            )
        })
        .unwrap_or_else(|| format!("+{}", m.customer_phone.as_deref().unwrap_or(&m.customer_id)));
    let text = format!(
        "{}: a conversation needs a person ({category}). {who} wrote: \"{}\"",
        ctx.tenant.name,
        trim_to(&input.text, 500)
    );
    if let Some(phone) = &s.escalation_phone {
        let digits = phone.trim_start_matches('+').to_string();
        let last = store
            .contact_last_inbound(ctx.tenant.id, msg.channel, &digits)
            .await?;
        let id = Uuid::now_v7();
        sends.push(OutboundRecord {
            id,
            idempotency_key: format!("notify:{}", msg.id),
            provider_account_id: m.provider_account_id.clone(),
            recipient: phone.clone(),
            recipient_is_user_id: false,
            body: text.clone(),
            faq_id: None,
            mark_read_message_id: None,
            next_attempt_at: send_at,
            purpose: "notification",
            customer_id: digits,
            // Never written to us: the window is closed, so the template is used.
            window_closes_at: Some(
                last.map(|t| t + crate::domain::quiet::SERVICE_WINDOW)
                    .unwrap_or(now),
            ),
        });
        notes.push(NotificationRecord {
            id: Uuid::now_v7(),
            category: category.to_string(),
            via: "whatsapp",
            target: phone.clone(),
            outbound_message_id: Some(id),
            state: "queued",
            detail: None,
            subject: None,
            body: None,
            send_at,
        });
    }
    if let Some(email) = &s.escalation_email {
        let (state, detail) = if input.email_enabled {
            ("queued", None)
        } else {
            (
                "failed",
                Some("no SMTP relay is configured on this server (PARLEY_SMTP_URL)".to_string()),
            )
        };
        notes.push(NotificationRecord {
            id: Uuid::now_v7(),
            category: category.to_string(),
            via: "email",
            target: email.clone(),
            outbound_message_id: None,
            state,
            detail,
            subject: Some(format!(
                "[{}] A customer needs a person ({category})",
                ctx.tenant.name
            )),
            body: Some(format!(
                "{text}\n\nThe bot has paused this conversation. Answer the customer on WhatsApp; \
                 the bot takes over again when the conversation is released{}.\n",
                match s.handoff_idle_minutes {
                    Some(m) => format!(" or after {m} quiet minutes"),
                    None => String::new(),
                }
            )),
            send_at,
        });
    }
    Ok((sends, notes))
}

/// The rate counters a turn with this outcome takes one unit from, in order, each
/// with the name of its limit: the customer's daily and the tenant's hourly allowance,
/// for a reply to the customer (none for silence or an escalation). Counted in the
/// database, so every instance shares the count; windows follow the tenant's time zone.
pub fn quota_asks(
    ctx: &TenantContext,
    outcome: &Outcome,
    customer: &str,
    now: DateTime<Utc>,
) -> Vec<(&'static str, QuotaAsk)> {
    let s = &ctx.settings;
    let mut out = Vec::new();
    if outcome.reply.is_none() || outcome.escalate.is_some() {
        return out;
    }
    let ask = |scope: String, window_start, limit| QuotaAsk {
        tenant: ctx.tenant.id,
        scope,
        window_start,
        limit,
    };
    if let Some(limit) = s.max_messages_per_user_per_day {
        let tz: chrono_tz::Tz = ctx.tenant.timezone.parse().unwrap_or(chrono_tz::UTC);
        let local = now.with_timezone(&tz);
        let day = tz
            .with_ymd_and_hms(local.year(), local.month(), local.day(), 0, 0, 0)
            .earliest()
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(now);
        out.push((
            "max_messages_per_user_per_day",
            ask(format!("user_day:{customer}"), day, limit),
        ));
    }
    if let Some(limit) = s.max_messages_per_hour {
        let hour = now
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now);
        out.push((
            "max_messages_per_hour",
            ask("tenant_hour".to_string(), hour, limit),
        ));
    }
    out
}
