//! The pure decision for one inbound message: should the bot answer, with what, and
//! why. Every path names its reason; see README, "Decisions".

use serde_json::json;

use crate::cache::TenantContext;
use crate::domain::TrainingItemId;
use crate::domain::message::{InboundMessage, MessageKind};

/// What the bot does with one message, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Stable snake_case reason (`faq_match`, `below_threshold`, …).
    pub reason: &'static str,
    pub reply: Option<String>,
    pub faq_id: Option<TrainingItemId>,
    pub score: Option<f64>,
    pub detail: Option<serde_json::Value>,
}

impl Outcome {
    pub fn no_reply(reason: &'static str) -> Self {
        Self {
            reason,
            reply: None,
            faq_id: None,
            score: None,
            detail: None,
        }
    }

    fn reply(reason: &'static str, text: &str) -> Self {
        Self {
            reply: Some(text.to_string()),
            ..Self::no_reply(reason)
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// Decides what to do with `msg` for the tenant in `ctx`.
pub fn decide(ctx: &TenantContext, msg: &InboundMessage) -> Outcome {
    let s = &ctx.settings;
    if !ctx.tenant.active {
        return Outcome::no_reply("tenant_inactive");
    }
    if ctx.whatsapp.is_none() {
        return Outcome::no_reply("channel_not_configured");
    }
    if !s.bot_enabled {
        return Outcome::no_reply("bot_disabled");
    }
    if !s.auto_reply {
        return Outcome::no_reply("auto_reply_off");
    }
    if msg.kind == MessageKind::Reaction {
        // A thumbs-up is not a question; answering it would be noise.
        return Outcome::no_reply("reaction");
    }
    let text = msg.text.as_deref().map(str::trim).unwrap_or("");
    if !msg.kind.is_textual() {
        let detail = json!({ "kind": msg.kind.as_str() });
        return match &s.non_text_reply {
            Some(r) => Outcome::reply("non_text", r).with_detail(detail),
            None => Outcome::no_reply("non_text").with_detail(detail),
        };
    }
    if text.is_empty() {
        return Outcome::no_reply("empty_text");
    }
    match ctx.faq.best(text) {
        Some(hit) if hit.confidence >= s.confidence_threshold => Outcome {
            faq_id: Some(hit.item.id),
            score: Some(hit.confidence),
            ..Outcome::reply("faq_match", &hit.item.answer)
        }
        .with_detail(json!({ "matched": hit.matched_text })),
        best => {
            let detail = json!({
                "threshold": s.confidence_threshold,
                "best_faq_id": best.as_ref().map(|h| h.item.id),
            });
            Outcome {
                score: best.as_ref().map(|h| h.confidence),
                ..Outcome::reply("below_threshold", &s.fallback_text).with_detail(detail)
            }
        }
    }
}
