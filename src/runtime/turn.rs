//! The pure part of a turn: what the bot does with one message before any model is
//! asked, and what an LLM answer means. Every path names its reason; see README,
//! "Decisions".

use chrono::{DateTime, Utc};
use serde_json::json;

use super::escalation;
use crate::cache::TenantContext;
use crate::domain::TrainingItemId;
use crate::domain::message::{InboundMessage, MessageKind};
use crate::llm::LlmAnswer;
use crate::store::conversations::ConversationState;
use crate::store::messages::{Handoff, UsageDelta};

/// What the bot does with one message, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Stable snake_case reason (`faq_match`, `below_threshold`, `escalated:refund`, …).
    pub reason: String,
    pub reply: Option<String>,
    pub faq_id: Option<TrainingItemId>,
    pub score: Option<f64>,
    pub detail: Option<serde_json::Value>,
    /// Hand the conversation to a person for this category: the customer gets an
    /// acknowledgement and the tenant's escalation contacts are notified.
    pub escalate: Option<String>,
    pub usage: UsageDelta,
}

impl Outcome {
    pub fn no_reply(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            reply: None,
            faq_id: None,
            score: None,
            detail: None,
            escalate: None,
            usage: UsageDelta::default(),
        }
    }

    pub fn reply(reason: impl Into<String>, text: &str) -> Self {
        Self {
            reply: Some(text.to_string()),
            ..Self::no_reply(reason)
        }
    }

    pub fn escalated(category: &str) -> Self {
        Self {
            escalate: Some(category.to_string()),
            ..Self::no_reply(format!("escalated:{category}"))
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The reason without its category (`escalated:refund` → `escalated`), for metrics.
    pub fn reason_kind(&self) -> &str {
        self.reason.split(':').next().unwrap_or(&self.reason)
    }
}

/// The first step's verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Done(Outcome),
    /// No FAQ is good enough and the tenant has an LLM: ask it.
    AskLlm {
        best_faq: Option<TrainingItemId>,
        best_score: Option<f64>,
    },
}

/// Whether a conversation with a person has gone idle long enough to return to the bot.
pub fn handoff_expired(ctx: &TenantContext, conv: &ConversationState, now: DateTime<Utc>) -> bool {
    match (ctx.settings.handoff_idle_minutes, conv.human_activity_at) {
        (Some(minutes), Some(at)) => now >= at + chrono::Duration::minutes(minutes),
        _ => false,
    }
}

/// Decides what can be decided without a model, and whether the conversation changes
/// hands (back to the bot after idling).
pub fn gate(
    ctx: &TenantContext,
    msg: &InboundMessage,
    text: &str,
    conv: Option<&ConversationState>,
    now: DateTime<Utc>,
) -> (Step, Option<Handoff>) {
    let s = &ctx.settings;
    let done = |o: Outcome| (Step::Done(o), None);
    if !ctx.tenant.active {
        return done(Outcome::no_reply("tenant_inactive"));
    }
    if ctx.whatsapp.is_none() {
        return done(Outcome::no_reply("channel_not_configured"));
    }
    if !s.bot_enabled {
        return done(Outcome::no_reply("bot_disabled"));
    }
    if !s.auto_reply {
        return done(Outcome::no_reply("auto_reply_off"));
    }
    let mut handoff = None;
    if let Some(c) = conv.filter(|c| c.status == "human") {
        if !handoff_expired(ctx, c, now) {
            return done(Outcome::no_reply("human_handling").with_detail(json!({
                "since": c.human_since,
                "reason": c.handoff_reason,
            })));
        }
        handoff = Some(Handoff::ToBot);
    }
    let step = |o: Outcome| (Step::Done(o), handoff.clone());
    if msg.kind == MessageKind::Reaction {
        // A thumbs-up is not a question; answering it would be noise.
        return step(Outcome::no_reply("reaction"));
    }
    let text = text.trim();
    if !msg.kind.is_textual() {
        let detail = json!({ "kind": msg.kind.as_str() });
        return step(match &s.non_text_reply {
            Some(r) => Outcome::reply("non_text", r).with_detail(detail),
            None => Outcome::no_reply("non_text").with_detail(detail),
        });
    }
    if text.is_empty() {
        return step(Outcome::no_reply("empty_text"));
    }
    // Split once, for both the keywords and the FAQs.
    let words = crate::faq::normalize::words(text);
    if let Some(category) = escalation::detect_words(&words, &s.escalation_categories) {
        return step(Outcome::escalated(category).with_detail(json!({ "by": "keywords" })));
    }
    let best = ctx.faq.best_of_words(words);
    if let Some(hit) = &best
        && hit.confidence >= s.confidence_threshold
    {
        let mut o = Outcome {
            faq_id: Some(hit.item.id),
            score: Some(hit.confidence),
            ..Outcome::reply("faq_match", &hit.item.answer)
        }
        .with_detail(json!({ "matched": hit.matched_text }));
        o.usage.faq_answers = 1;
        return step(o);
    }
    let best_faq = best.as_ref().map(|h| h.item.id);
    let best_score = best.as_ref().map(|h| h.confidence);
    if s.ai_responses && ctx.ai.is_some() {
        return (
            Step::AskLlm {
                best_faq,
                best_score,
            },
            handoff,
        );
    }
    step(fallback(ctx, "below_threshold", best_faq, best_score, None))
}

/// The tenant's fallback text, with why the bot fell back.
pub fn fallback(
    ctx: &TenantContext,
    reason: &str,
    best_faq: Option<TrainingItemId>,
    best_score: Option<f64>,
    extra: Option<serde_json::Value>,
) -> Outcome {
    let mut detail = json!({
        "threshold": ctx.settings.confidence_threshold,
        "best_faq_id": best_faq,
    });
    if let Some(serde_json::Value::Object(extra)) = extra
        && let Some(d) = detail.as_object_mut()
    {
        d.extend(extra);
    }
    Outcome {
        score: best_score,
        ..Outcome::reply(reason, &ctx.settings.fallback_text).with_detail(detail)
    }
}

/// What an LLM answer means for the tenant: accepted only if confident enough and
/// not in an escalation category; otherwise the conversation goes to a person.
pub fn judge_llm_answer(ctx: &TenantContext, answer: &LlmAnswer, max_len: usize) -> Outcome {
    let s = &ctx.settings;
    let category = answer.category.as_deref();
    let detail = json!({
        "confidence": answer.confidence,
        "category": category,
        "needs_human": answer.needs_human,
        "threshold": s.confidence_threshold,
    });
    let mut o =
        if let Some(cat) = category.filter(|c| s.escalation_categories.iter().any(|e| e == c)) {
            Outcome::escalated(cat)
        } else if answer.needs_human {
            Outcome::escalated("needs_human")
        } else if answer.confidence < s.confidence_threshold {
            Outcome {
                escalate: Some("low_confidence".into()),
                ..Outcome::no_reply("llm_low_confidence")
            }
        } else {
            Outcome::reply("llm_answer", &trim_to(&answer.answer, max_len))
        };
    o.score = Some(answer.confidence);
    o.detail = Some(detail);
    o
}

/// Cuts `text` to at most `max` characters, at a word boundary when one is near, with
/// an ellipsis when something was cut.
pub fn trim_to(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(i) if i > cut.len() * 3 / 4 => cut[..i].trim_end().to_string(),
        _ => cut,
    };
    format!("{at_word}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_keeps_short_text_and_cuts_long_text_within_the_limit() {
        assert_eq!(trim_to("  hello ", 10), "hello");
        let long = "word ".repeat(100);
        let t = trim_to(&long, 50);
        assert!(t.chars().count() <= 50, "{t}");
        assert!(t.ends_with('…'));
        let one = "x".repeat(30);
        assert_eq!(trim_to(&one, 10).chars().count(), 10);
    }
}
