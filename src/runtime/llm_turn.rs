//! Asking a tenant's own LLM: the budget check, the request (the published system
//! prompt with the tenant's variables and its best FAQs, the classifier prompt, and
//! the recent conversation, bounded), and what the answer means. Only this tenant's
//! key, model, prompts, FAQs and conversation go into its request.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Utc};
use serde_json::json;

use super::turn::{fallback, judge_llm_answer};
use super::{Outcome, TurnInput, max_answer_chars};
use crate::cache::TenantContext;
use crate::domain::TrainingItemId;
use crate::llm::{ChatTurn, LlmClient, LlmRequest, LlmTarget};
use crate::prompts;
use crate::store::{Store, StoreResult};

/// Earlier messages sent as context unless the default template says otherwise.
pub const CONTEXT_MESSAGES: i64 = 12;
/// Most characters of earlier messages sent as context (the newest are kept).
pub const CONTEXT_CHARS: usize = 6000;
/// FAQ items given to the model as business facts.
pub const CONTEXT_FAQS: usize = 5;

/// Asks the tenant's LLM about the message in `input`, unless its monthly budget is
/// spent; any failure falls back to the tenant's fallback text.
pub async fn ask_llm(
    store: &dyn Store,
    llm: &LlmClient,
    ctx: &TenantContext,
    input: &TurnInput<'_>,
    best: (Option<TrainingItemId>, Option<f64>),
    now: DateTime<Utc>,
) -> StoreResult<Outcome> {
    let (best_faq, best_score) = best;
    let Some(ai) = &ctx.ai else {
        return Ok(fallback(ctx, "below_threshold", best_faq, best_score, None));
    };
    if let Some(budget) = ctx.settings.llm_monthly_token_budget {
        let month_start = now.date_naive().with_day(1).unwrap_or(now.date_naive());
        let used: i64 = store
            .list_usage(ctx.tenant.id, month_start, now.date_naive())
            .await?
            .iter()
            .map(|d| d.tokens_in + d.tokens_out)
            .sum();
        if used >= budget {
            return Ok(fallback(
                ctx,
                "budget_exhausted",
                best_faq,
                best_score,
                Some(json!({ "budget_tokens": budget, "used_tokens": used })),
            ));
        }
    }
    let msg = input.msg;
    // Earlier messages plus the one (or the burst) being answered, which is in the log.
    let context = ctx
        .default_template()
        .and_then(|t| t.context_messages)
        .unwrap_or(CONTEXT_MESSAGES);
    let history = store
        .recent_messages(
            ctx.tenant.id,
            msg.channel,
            &msg.message.customer_id,
            context + 1 + input.merged.len() as i64,
        )
        .await?;
    let mut turns: Vec<ChatTurn> = history
        .into_iter()
        .map(|h| ChatTurn {
            from_customer: h.from_customer,
            text: h.text,
        })
        .collect();
    // The message being answered is last, whatever the log holds (text logging may be
    // off, or a burst merged several messages).
    for _ in 0..=input.merged.len() {
        if turns.last().is_some_and(|t| t.from_customer) {
            turns.pop();
        }
    }
    turns.push(ChatTurn {
        from_customer: true,
        text: input.text.clone(),
    });
    let req = build_llm_request(ctx, &input.text, turns, now);
    let target = LlmTarget {
        provider: ai.config.provider,
        base_url: &ai.config.base_url,
        model: &ai.config.model,
        api_key: ai.api_key.as_ref(),
    };
    metrics::counter!("parley_llm_calls_total").increment(1);
    let mut outcome = match llm.complete(&target, &req).await {
        Ok(answer) => {
            let mut o = judge_llm_answer(ctx, &answer, max_answer_chars(ctx));
            o.usage.tokens_in = answer.tokens_in;
            o.usage.tokens_out = answer.tokens_out;
            o
        }
        Err(e) => {
            metrics::counter!("parley_llm_errors_total", "code" => e.code()).increment(1);
            tracing::warn!(tenant = %ctx.tenant.slug, error = e.code(), "llm call failed; falling back");
            let mut o = fallback(
                ctx,
                "llm_error",
                best_faq,
                best_score,
                Some(json!({ "error": e.code() })),
            );
            if let Some((tin, tout)) = e.usage() {
                o.usage.tokens_in = tin;
                o.usage.tokens_out = tout;
            }
            o
        }
    };
    outcome.usage.llm_calls = 1;
    if outcome.faq_id.is_none() && outcome.reason == "llm_answer" {
        // Which FAQ was nearest is worth keeping in the decision.
        if let Some(d) = outcome.detail.as_mut().and_then(|d| d.as_object_mut()) {
            d.insert("best_faq_id".into(), json!(best_faq));
        }
    }
    Ok(outcome)
}

/// The request for one turn: system prompt (published version, else the default
/// template's, else `prompts/system.md`) and classifier prompt, both rendered with the
/// tenant's variables, then the conversation, bounded to [`CONTEXT_CHARS`].
pub fn build_llm_request(
    ctx: &TenantContext,
    question: &str,
    mut turns: Vec<ChatTurn>,
    now: DateTime<Utc>,
) -> LlmRequest {
    let template = ctx.default_template();
    let system = ctx
        .published_prompt("system")
        .map(|p| p.body.as_str())
        .or(template
            .map(|t| t.system_prompt.as_str())
            .filter(|p| !p.trim().is_empty()))
        .unwrap_or(prompts::DEFAULT_SYSTEM);
    let classifier = ctx
        .published_prompt("classifier")
        .map(|p| p.body.as_str())
        .unwrap_or(prompts::DEFAULT_CLASSIFIER);
    let tz: chrono_tz::Tz = ctx.tenant.timezone.parse().unwrap_or(chrono_tz::UTC);
    // The best-matching FAQs first, then others (higher priority first) up to the limit:
    // a question with no word in common with any FAQ still gets the business's facts.
    let mut items: Vec<&crate::domain::TrainingItem> = ctx
        .faq
        .top(question, CONTEXT_FAQS)
        .iter()
        .map(|h| h.item)
        .collect();
    let mut rest: Vec<&crate::domain::TrainingItem> = ctx
        .training
        .iter()
        .filter(|t| t.active && t.kind == crate::domain::TrainingKind::Faq)
        .collect();
    rest.sort_by_key(|t| std::cmp::Reverse(t.priority));
    for t in rest {
        if items.len() >= CONTEXT_FAQS {
            break;
        }
        if !items.iter().any(|i| i.id == t.id) {
            items.push(t);
        }
    }
    let facts: Vec<String> = items
        .iter()
        .map(|t| format!("Q: {}\nA: {}", t.question, t.answer))
        .collect();
    let max_len = max_answer_chars(ctx);
    let mut categories: Vec<String> = ctx.settings.escalation_categories.clone();
    categories.push("general".into());
    let vars: HashMap<&str, String> = HashMap::from([
        (
            "assistant_name",
            template
                .map(|t| t.name.clone())
                .unwrap_or_else(|| "the assistant".into()),
        ),
        ("business_name", ctx.tenant.name.clone()),
        ("timezone", ctx.tenant.timezone.clone()),
        (
            "local_time",
            now.with_timezone(&tz)
                .format("%A %-d %B %Y, %H:%M")
                .to_string(),
        ),
        (
            "faq_context",
            if facts.is_empty() {
                "(none)".into()
            } else {
                facts.join("\n\n")
            },
        ),
        (
            "categories",
            categories
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("max_response_length", max_len.to_string()),
        (
            "tone",
            template
                .and_then(|t| t.tone.clone())
                .unwrap_or_else(|| "friendly and concise".into()),
        ),
    ]);
    let system_prompt = format!(
        "{}\n\n{}",
        prompts::render(system, &vars).trim_end(),
        prompts::render(classifier, &vars).trim_end()
    );
    // Keep the newest turns within the character budget (the last one always).
    let mut total = 0;
    let mut keep = turns.len();
    for (i, t) in turns.iter().enumerate().rev() {
        total += t.text.len();
        if total > CONTEXT_CHARS && i + 1 < turns.len() {
            break;
        }
        keep = i;
    }
    let turns = turns.split_off(keep);
    LlmRequest {
        system_prompt,
        history: turns,
        // Room for the answer plus the JSON around it.
        max_output_tokens: Some((max_len / 3 + 200).min(2000) as u32),
    }
}
