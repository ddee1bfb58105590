//! Outbound side of the WhatsApp Cloud API: request bodies for `POST /{phone_number_id}/messages`
//! (text, template, mark-as-read), reading the send response, and classifying Graph
//! errors into parley's retry policy (channels.md 1.8 and 1.10).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

// Domain types come through the parent's single `use` of the message module.
use super::{SendFailure, wire};

/// Meta's limit for `text.body`, in characters.
const TEXT_LIMIT: usize = 4096;
/// What a cut text ends with (one character).
const ELLIPSIS: char = '…';

/// Without a '+', Meta prepends the business number's country code and the message can
/// reach the wrong person (channels.md 1.8), so all-digit ids get one.
fn e164(to: &str) -> String {
    if !to.is_empty() && to.bytes().all(|b| b.is_ascii_digit()) {
        let mut s = String::with_capacity(to.len() + 1);
        s.push('+');
        s.push_str(to);
        s
    } else {
        to.to_owned()
    }
}

/// `text` cut to Meta's 4096-character limit (counted in chars, cut on a char
/// boundary), ending with "…" when cut.
fn truncate_text(text: &str) -> Cow<'_, str> {
    // One pass: find where char 4096 starts; the text fits if nothing follows it.
    let Some((cut, _)) = text.char_indices().nth(TEXT_LIMIT - 1) else {
        return Cow::Borrowed(text);
    };
    if text[cut..].chars().nth(1).is_none() {
        return Cow::Borrowed(text);
    }
    // Keep 4095 chars and spend the last one on the ellipsis.
    let mut s = String::with_capacity(cut + ELLIPSIS.len_utf8());
    s.push_str(&text[..cut]);
    s.push(ELLIPSIS);
    Cow::Owned(s)
}

/// A request body for `POST /{phone_number_id}/messages`, serialized once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphBody(pub Bytes);

impl GraphBody {
    fn of<T: Serialize>(body: &T) -> Self {
        // Strings and maps of strings: serializing them cannot fail.
        Self(Bytes::from(serde_json::to_vec(body).unwrap_or_default()))
    }

    /// The body as a JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }
}

/// A message send's fields, in the order Meta's reference requests have them; one of
/// `text` and `template` is set, as `kind` says.
#[derive(Serialize)]
struct Outgoing<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextPart<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
}

impl<'a> Outgoing<'a> {
    /// A `kind` message to `to`, its content still to be set.
    ///
    /// The addressing: `to` for a phone number / WhatsApp id, or `recipient` for a
    /// business-scoped user id. `recipient` is Meta's BSUID field per third-party copies
    /// of the 2026 docs (the bench mock accepts it too); `to` takes precedence when both
    /// are sent, so only one is ever set.
    fn to(to: &'a str, to_is_user_id: bool, kind: &'static str) -> Self {
        Self {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: (!to_is_user_id).then(|| e164(to)),
            recipient: to_is_user_id.then_some(to),
            kind,
            text: None,
            template: None,
            biz_opaque_callback_data: None,
        }
    }
}

#[derive(Serialize)]
struct TextPart<'a> {
    body: Cow<'a, str>,
    preview_url: bool,
}

#[derive(Serialize)]
struct MarkRead<'a> {
    messaging_product: &'static str,
    status: &'static str,
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    typing_indicator: Option<Typing>,
}

#[derive(Serialize)]
struct Typing {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Request body for a text reply (shape of `fixtures/meta_send_text_request.json`):
/// `{"messaging_product":"whatsapp","recipient_type":"individual","to":"+<digits>",
/// "type":"text","text":{"body":…,"preview_url":false}}`.
///
/// - `to` gets a leading '+' when it is all digits: without it Meta prepends the
///   business number's country code (channels.md 1.8). Other ids are sent as given.
/// - With `to_is_user_id`, `to` is a BSUID and is sent as `"recipient"` with no `"to"`
///   (third-party copies of Meta's 2026 BSUID docs; `to` would win if both were set;
///   the bench mock accepts `recipient`). Meta answers 131062 for message kinds that
///   cannot go to a BSUID.
/// - The body is cut to Meta's 4096-character limit on a char boundary (chars, not
///   bytes), ending with "…" when cut.
/// - `callback_data` is sent as `biz_opaque_callback_data` and comes back on every
///   status webhook of the message (`StatusUpdate::callback_data`).
pub fn text_message_body(
    to: &str,
    to_is_user_id: bool,
    text: &str,
    callback_data: Option<&str>,
) -> GraphBody {
    // Written straight from its fields (no JSON value built first): one of these goes
    // out for every reply.
    GraphBody::of(&Outgoing {
        text: Some(TextPart {
            body: truncate_text(text),
            preview_url: false,
        }),
        biz_opaque_callback_data: callback_data,
        ..Outgoing::to(to, to_is_user_id, "text")
    })
}

/// Mark-as-read body (channels.md 1.8), optionally with the typing indicator.
///
/// The typing indicator shows for up to 25 s or until the reply is sent; only ask for
/// it when a reply will follow.
pub fn mark_read_body(message_id: &str, typing: bool) -> GraphBody {
    GraphBody::of(&MarkRead {
        messaging_product: "whatsapp",
        status: "read",
        message_id,
        typing_indicator: typing.then_some(Typing { kind: "text" }),
    })
}

/// Template message body (shape of `fixtures/meta_send_template_request.json`) with
/// text parameters for the template's body.
///
/// Without parameters no `components` are sent. The parameter count must match the
/// approved template or Meta answers 132000.
pub fn template_message_body(
    to: &str,
    to_is_user_id: bool,
    name: &str,
    language: &str,
    body_params: &[String],
) -> GraphBody {
    let mut template = json!({ "name": name, "language": { "code": language } });
    if !body_params.is_empty() {
        let parameters: Vec<Value> = body_params
            .iter()
            .map(|p| json!({ "type": "text", "text": p }))
            .collect();
        template["components"] = json!([{ "type": "body", "parameters": parameters }]);
    }
    GraphBody::of(&Outgoing {
        template: Some(template),
        ..Outgoing::to(to, to_is_user_id, "template")
    })
}

/// `messages[0].id` from a success response.
pub fn parse_send_response(body: &[u8]) -> Option<String> {
    let resp: wire::Obj<wire::SendResponse> = serde_json::from_slice(body).ok()?;
    resp.0?.messages.objects().next()?.id.take()
}

// ---------------------------------------------------------------------------------
// Send errors.

/// A failed send, as Meta described it, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WhatsApp send failed: HTTP {http_status}, Meta code {code:?} ({class:?})")]
pub struct SendError {
    pub http_status: u16,
    /// Meta's error `code`, when the body had one.
    pub code: Option<i64>,
    /// The error's title (from `message` without its "(#code) " prefix).
    pub title: Option<String>,
    /// `error_data.details`.
    pub details: Option<String>,
    pub class: SendFailure,
}

/// Classifies a non-2xx (or 2xx without `messages[0].id`) Graph response by Meta's
/// error `code` (channels.md 1.10), not by HTTP status, since copies of Meta's table
/// disagree on the statuses:
///
/// - 0, 190 → `TokenExpired`
/// - 1, 2, 4, 80007, 130429, 131000, 131016, 131057, 133004 → `Retryable`
/// - 131056 → `PairRateLimited`
/// - 3, 10, 100, 200–299, 368, 131005, 131008, 131009, 131021, 131026, 131031, 131042,
///   131047, 131048, 131049, 132xxx, 133010 → `Permanent`
/// - unknown or no code (e.g. an HTML 502 from a proxy): HTTP 5xx or 429 → `Retryable`,
///   anything else → `Permanent`.
pub fn classify_error(http_status: u16, body: &[u8]) -> SendError {
    let error = serde_json::from_slice::<wire::Obj<wire::ErrorResponse>>(body)
        .ok()
        .and_then(|r| r.0)
        .and_then(|r| r.error.0);
    let (code, title, details) = match error {
        Some(mut e) => {
            let title = e
                .title
                .take()
                .or_else(|| e.message.as_str().map(strip_code_prefix));
            (
                e.code.0,
                title,
                e.error_data.0.and_then(|mut d| d.details.take()),
            )
        }
        None => (None, None, None),
    };
    SendError {
        http_status,
        code,
        title,
        details,
        class: classify_code(code, http_status),
    }
}

fn classify_code(code: Option<i64>, http_status: u16) -> SendFailure {
    match code {
        Some(0 | 190) => SendFailure::TokenExpired,
        Some(1 | 2 | 4 | 80007 | 130429 | 131000 | 131016 | 131057 | 133004) => {
            SendFailure::Retryable
        }
        Some(131056) => SendFailure::PairRateLimited,
        Some(
            3
            | 10
            | 100
            | 200..=299
            | 368
            | 131005
            | 131008
            | 131009
            | 131021
            | 131026
            | 131031
            | 131042
            | 131047
            | 131048
            | 131049
            | 132000..=132999
            | 133010,
        ) => SendFailure::Permanent,
        // Unknown or no code: only the HTTP status is left to go on.
        _ if http_status >= 500 || http_status == 429 => SendFailure::Retryable,
        _ => SendFailure::Permanent,
    }
}

/// "(#130429) Rate limit hit" → "Rate limit hit".
fn strip_code_prefix(message: &str) -> String {
    let title = message
        .strip_prefix("(#")
        .and_then(|rest| rest.split_once(") "))
        .filter(|(code, _)| !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()))
        .map_or(message, |(_, title)| title);
    title.to_owned()
}
