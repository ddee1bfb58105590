//! Turning a chat completion into an `LlmAnswer`: finish reasons, token usage and the JSON
//! object the system prompt asked the model for.

use serde_json::{Map, Value};

use super::LlmAnswer;
use super::error::{LlmError, Usage};
use super::wire::{ChatResponse, Choice};

/// Checks the first choice and parses its content as our JSON answer.
pub(super) fn from_response(response: ChatResponse) -> Result<LlmAnswer, LlmError> {
    let usage = reported_usage(response.usage.as_ref());
    let Some(choice) = response.choices.and_then(|c| c.into_iter().next()) else {
        return Err(if response.error.is_some() {
            LlmError::refused(
                "the provider returned an error object instead of choices",
                usage,
            )
        } else {
            LlmError::malformed("the response has no choices", usage)
        });
    };
    let finish_reason = finish_reason(&choice);
    match finish_reason.as_deref() {
        Some("content_filter") => {
            return Err(LlmError::refused("finish_reason content_filter", usage));
        }
        Some("error") => return Err(LlmError::refused("finish_reason error", usage)),
        _ => {}
    }
    let message = choice.message.unwrap_or_default();
    let content = content_text(message.content.as_ref());
    let refusal = message
        .refusal
        .as_ref()
        .and_then(Value::as_str)
        .is_some_and(|r| !r.trim().is_empty());
    let Some(content) = content.filter(|c| !c.trim().is_empty()) else {
        return Err(if refusal {
            LlmError::refused("the model refused", usage)
        } else {
            LlmError::malformed("the message has no content", usage)
        });
    };
    let parsed = parse_answer(&content).map_err(|reason| {
        if finish_reason.as_deref() == Some("length") {
            LlmError::malformed(format!("{reason} (output cut off at max tokens)"), usage)
        } else {
            LlmError::malformed(reason, usage)
        }
    })?;
    let (tokens_in, tokens_out) = usage.unwrap_or((0, 0));
    Ok(LlmAnswer {
        answer: parsed.answer,
        confidence: parsed.confidence,
        category: parsed.category,
        needs_human: parsed.needs_human,
        tokens_in,
        tokens_out,
    })
}

/// `(prompt_tokens, completion_tokens)` when the provider reported either; a missing one
/// counts 0.
fn reported_usage(usage: Option<&Value>) -> Option<Usage> {
    let usage = usage?.as_object()?;
    let count = |name: &str| usage.get(name).and_then(token_count);
    let (tokens_in, tokens_out) = (count("prompt_tokens"), count("completion_tokens"));
    if tokens_in.is_none() && tokens_out.is_none() {
        return None;
    }
    Some((tokens_in.unwrap_or(0), tokens_out.unwrap_or(0)))
}

fn token_count(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        _ => None,
    }
    .map(|n| n.max(0))
}

fn finish_reason(choice: &Choice) -> Option<String> {
    choice
        .finish_reason
        .as_ref()
        .and_then(Value::as_str)
        .map(|r| r.trim().to_ascii_lowercase())
}

/// The message text: a string, or the text parts of a content array joined.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let text: String = parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect();
            Some(text)
        }
        _ => None,
    }
}

/// The answer object the system prompt asks for, checked.
#[derive(Debug, PartialEq)]
pub(super) struct ParsedAnswer {
    pub answer: String,
    pub confidence: f64,
    pub category: Option<String>,
    pub needs_human: bool,
}

/// Parses `{"answer", "confidence", "category", "needs_human"}` from the model's content.
/// Tolerates surrounding whitespace, a Markdown code fence, and text around the object
/// (reasoning models on local servers sometimes think out loud first). The error says what
/// was wrong, never what the model wrote.
pub(super) fn parse_answer(content: &str) -> Result<ParsedAnswer, String> {
    let object = json_object(content).ok_or("the content is not a JSON object")?;

    let answer = match object.get("answer") {
        Some(Value::String(answer)) => answer.trim().to_owned(),
        None | Some(Value::Null) => return Err("the object has no answer".into()),
        Some(_) => return Err("answer is not a string".into()),
    };
    let confidence = match object.get("confidence") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        None | Some(Value::Null) => return Err("the object has no confidence".into()),
        Some(_) => None,
    }
    .filter(|c| c.is_finite())
    .ok_or("confidence is not a number")?
    .clamp(0.0, 1.0);
    let category = match object.get("category") {
        Some(Value::String(category)) => Some(category.trim().to_lowercase())
            .filter(|c| !c.is_empty() && c != "none" && c != "null"),
        _ => None,
    };
    let needs_human = match object.get("needs_human") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => false,
        // Unsure whether the model wanted a human: not an answer to send.
        Some(_) => return Err("needs_human is not a boolean".into()),
    };
    if answer.is_empty() && !needs_human {
        return Err("the answer is empty and needs_human is false".into());
    }
    Ok(ParsedAnswer {
        answer,
        confidence,
        category,
        needs_human,
    })
}

fn json_object(content: &str) -> Option<Map<String, Value>> {
    let trimmed = strip_fence(content.trim());
    if let Ok(object) = serde_json::from_str::<Map<String, Value>>(trimmed) {
        return Some(object);
    }
    let (start, end) = (trimmed.find('{')?, trimmed.rfind('}')?);
    serde_json::from_str(trimmed.get(start..=end)?).ok()
}

/// The inside of a ```` ```json … ``` ```` block, or the text unchanged.
fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    // Drop the info string (`json`, `JSON`, nothing) up to the end of the first line.
    let body = rest.split_once('\n').map_or("", |(_, body)| body);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}
