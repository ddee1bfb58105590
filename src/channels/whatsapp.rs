//! WhatsApp Cloud API (Meta Graph API) wire protocol: webhook signature checks, webhook
//! parsing into parley's channel-neutral messages, outbound request bodies, and the
//! classification of send errors. No I/O here: the HTTP calls are made elsewhere.
//!
//! Parsing policy (see `parse_webhook`): the envelope must be a WhatsApp webhook, but
//! inside it nothing is fatal. Unknown `field`s, keys and message types are ignored or
//! kept as `MessageKind::Other`; a value of the wrong JSON type counts as absent; an
//! item that cannot be used at all (a message without `id`, a status without `id` or
//! `status`) is skipped. Callers persist the raw body before parsing (channels.md 1.4),
//! so a skipped item is still on record.

mod http;
mod receipts;
mod send;
mod wire;

#[cfg(test)]
mod tests;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Sha256;

// The one place that names the domain types (becomes `crate::domain::message::*`).
use crate::domain::message::*;

use wire::Contact;

pub use http::{BadBase, GraphClient, check_base, check_system_roots};
pub use receipts::ReadReceipt;
pub use send::{
    GraphBody, SendError, classify_error, mark_read_body, parse_send_response,
    template_message_body, text_message_body,
};

/// The only `object` Meta sends for WhatsApp Business Account webhooks.
const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

type HmacSha256 = Hmac<Sha256>;

fn mac(app_secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    HmacSha256::new_from_slice(app_secret).expect("HMAC accepts any key length")
}

/// Meta's `X-Hub-Signature-256` check: the header must be "sha256=" + hex of
/// HMAC-SHA256(app_secret, raw body), compared in constant time. A missing or garbled
/// header is `false`.
///
/// `body` must be the bytes exactly as received: Meta signs its `\u00e9`-escaped
/// form, so a parsed and re-serialized body does not verify (channels.md 1.3).
/// Upper-case hex is accepted; surrounding whitespace or any other prefix is not.
pub fn verify_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let mut expected = [0u8; 32];
    // Exactly 64 hex digits, or it is not a SHA-256 tag.
    if hex::decode_to_slice(hex_sig, &mut expected).is_err() {
        return false;
    }
    let mut m = mac(app_secret);
    m.update(body);
    // `verify_slice` compares in constant time.
    m.verify_slice(&expected).is_ok()
}

/// The `X-Hub-Signature-256` header value for a body, lowercase hex as Meta sends it
/// (used by tests and tools).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(app_secret);
    m.update(body);
    let tag = m.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    out.push_str(&hex::encode(tag));
    out
}

/// Why a webhook body could not be read as a WhatsApp webhook at all. The messages
/// never include any of the body's text (it may be a customer's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON (or JSON with duplicate keys / unpaired surrogate escapes).
    #[error("webhook body is not valid JSON (line {line}, column {column})")]
    InvalidJson { line: usize, column: usize },
    /// Valid JSON, but not an object.
    #[error("webhook body is not a JSON object")]
    NotAnObject,
    /// `object` is missing or not `whatsapp_business_account`.
    #[error("webhook `object` is not \"whatsapp_business_account\"")]
    WrongObject,
    /// `entry` is missing or not an array.
    #[error("webhook has no `entry` array")]
    MissingEntry,
}

/// Parses a whole webhook body into every message, status, error and echo it carries,
/// across all entries and changes, in body order. Call it only after
/// `verify_signature` on the same bytes.
///
/// Unknown `field`s and keys are ignored, never an error; unknown message types are
/// kept as `MessageKind::Other(name)` with their raw JSON.
///
/// Decisions:
/// - Only `field: "messages"` changes (or changes without `field`) yield messages,
///   statuses and errors; `field: "smb_message_echoes"` yields echoes; other fields
///   are ignored.
/// - Values of the wrong JSON type count as absent; numeric ids are accepted as text.
/// - Skipped (not counted; the batch type has no place for a count and the raw body
///   is persisted by the caller): messages without `id` (no dedupe key) or without any
///   customer id (`from`, `from_user_id`, or a contact's `wa_id`/`user_id`); statuses
///   without `id` or `status`; errors without a numeric `code`; echoes without a
///   recipient; all items of a change without `metadata.phone_number_id` (no tenant).
/// - A missing or unreadable `timestamp` becomes 0; a missing `type` becomes
///   `MessageKind::Other("unknown")` (Meta's old name for unrecognised messages).
pub fn parse_webhook(body: &[u8]) -> Result<WebhookBatch, ParseError> {
    let envelope: wire::Obj<wire::Envelope> =
        serde_json::from_slice(body).map_err(|e| ParseError::InvalidJson {
            line: e.line(),
            column: e.column(),
        })?;
    let envelope = envelope.0.ok_or(ParseError::NotAnObject)?;
    if envelope.object.as_str() != Some(WHATSAPP_OBJECT) {
        return Err(ParseError::WrongObject);
    }
    let entries = envelope.entry.0.ok_or(ParseError::MissingEntry)?;

    let mut batch = WebhookBatch::default();
    for entry in entries.into_iter().filter_map(|e| e.0) {
        for change in entry.changes.objects() {
            let Some(value) = change.value.0 else {
                continue;
            };
            match change.field.as_str() {
                None | Some("messages") => add_messages_change(&mut batch, value),
                Some("smb_message_echoes") => add_echoes_change(&mut batch, value),
                // Template/quality/account updates and future fields: not ours.
                Some(_) => {}
            }
        }
    }
    Ok(batch)
}

/// The account (phone_number_id) of a change, needed to route anything in it.
fn account_of(value: &mut wire::ChangeValue) -> Option<String> {
    value
        .metadata
        .0
        .as_mut()
        .and_then(|m| m.phone_number_id.take())
}

fn add_messages_change(batch: &mut WebhookBatch, mut value: wire::ChangeValue) {
    let Some(account) = account_of(&mut value) else {
        return;
    };
    let contacts: Vec<Contact> = value.contacts.objects().collect();
    for raw in value.messages.items() {
        if let Some(m) = inbound_message(&account, &contacts, raw) {
            batch.messages.push(m);
        }
    }
    for s in value.statuses.objects() {
        if let Some(s) = status_update(&account, s) {
            batch.statuses.push(s);
        }
    }
    for e in value.errors.objects() {
        if let Some(e) = provider_error(e) {
            batch.errors.push((account.clone(), e));
        }
    }
}

fn add_echoes_change(batch: &mut WebhookBatch, mut value: wire::ChangeValue) {
    let Some(account) = account_of(&mut value) else {
        return;
    };
    let items = value
        .message_echoes
        .objects()
        .chain(value.smb_message_echoes.objects());
    for echo in items {
        // Same key rule as `customer_id`: the BSUID first, else the number. `to` is the
        // number as the business typed it (Meta's example shows "+1650…"), while
        // inbound ids are bare digits, so the '+' is dropped to match them.
        let customer = echo
            .to_user_id
            .as_str()
            .or_else(|| echo.to.as_str().map(|t| t.strip_prefix('+').unwrap_or(t)))
            .filter(|c| !c.is_empty());
        if let Some(c) = customer {
            batch.echoes.push(BusinessEcho {
                account: account.clone(),
                customer_id: c.to_owned(),
                provider_message_id: echo.id.owned(),
                text: echo.text.0.as_ref().and_then(|t| t.body.owned()),
                timestamp: echo.timestamp.0.unwrap_or(0),
            });
        }
    }
}

/// The contact entry describing a message's sender: matched by BSUID or WhatsApp id;
/// with a single contact, that one unless its ids contradict the message's.
fn contact_for<'c, 'a>(contacts: &'c [Contact<'a>], m: &wire::Message) -> Option<&'c Contact<'a>> {
    let from = m.from.as_str();
    let from_user = m.from_user_id.as_str();
    let same = |a: Option<&str>, b: Option<&str>| a.is_some() && a == b;
    let clash = |a: Option<&str>, b: Option<&str>| a.is_some() && b.is_some() && a != b;
    contacts
        .iter()
        .find(|c| same(c.user_id.as_str(), from_user) || same(c.wa_id.as_str(), from))
        .or(match contacts {
            [c] if !clash(c.user_id.as_str(), from_user) && !clash(c.wa_id.as_str(), from) => {
                Some(c)
            }
            _ => None,
        })
}

/// The parley view of one `messages[]` item; `None` when it cannot be used.
fn inbound_message(account: &str, contacts: &[Contact], item: &RawValue) -> Option<InboundMessage> {
    if !item.get().starts_with('{') {
        return None;
    }
    // Read from the item's text, without building its JSON value first. Fails only
    // for an object with a key twice, which is read as a JSON value instead (the last
    // of the repeated keys counts).
    let Ok(m) = serde_json::from_str::<wire::Message>(item.get()) else {
        let raw: Value = serde_json::from_str(item.get()).ok()?;
        return message_from_value(account, contacts, raw);
    };
    // A plain text message's columns say all its JSON does: the JSON is not kept
    // (`store::raw_worth_keeping`), so it is not built either (`wire::PlainText`).
    let plain = m.kind.as_str() == Some("text")
        && serde_json::from_str::<wire::PlainText>(item.get()).is_ok_and(|p| p.0);
    let mut message = message_parts(account, contacts, m)?;
    if !plain {
        message.raw = serde_json::from_str(item.get()).unwrap_or(Value::Null);
    }
    Some(message)
}

/// `inbound_message` for an item read as a JSON value.
fn message_from_value(account: &str, contacts: &[Contact], raw: Value) -> Option<InboundMessage> {
    if !raw.is_object() {
        return None;
    }
    // Cannot fail for an object: every wire field accepts any JSON value, and a
    // `Value` has no duplicate keys.
    let m = wire::Message::deserialize(&raw).ok()?;
    let message = message_parts(account, contacts, m)?;
    Some(InboundMessage { raw, ..message })
}

/// A message's parts, without its JSON (`raw` is null).
fn message_parts(account: &str, contacts: &[Contact], m: wire::Message) -> Option<InboundMessage> {
    let provider_message_id = m.id.owned()?;
    let contact = contact_for(contacts, &m);
    let customer_user_id = m
        .from_user_id
        .owned()
        .or_else(|| contact.and_then(|c| c.user_id.owned()));
    let customer_phone = m
        .from
        .owned()
        .or_else(|| contact.and_then(|c| c.wa_id.owned()));
    let customer_id = customer_user_id
        .clone()
        .or_else(|| customer_phone.clone())?;
    let customer_name = contact
        .and_then(|c| c.profile.0.as_ref())
        .and_then(|p| p.name.owned());

    let kind = m
        .kind
        .as_str()
        .map_or_else(|| MessageKind::Other("unknown".into()), MessageKind::parse);
    let reply = m
        .interactive
        .0
        .as_ref()
        .and_then(|i| i.button_reply.0.as_ref().or(i.list_reply.0.as_ref()));
    let button = m.button.0.as_ref();
    let media_obj = match kind {
        MessageKind::Image => m.image.0.as_ref(),
        MessageKind::Audio => m.audio.0.as_ref(),
        MessageKind::Video => m.video.0.as_ref(),
        MessageKind::Document => m.document.0.as_ref(),
        MessageKind::Sticker => m.sticker.0.as_ref(),
        _ => None,
    };
    let text = match kind {
        MessageKind::Text => m.text.0.as_ref().and_then(|t| t.body.owned()),
        MessageKind::Interactive => reply.and_then(|r| r.title.owned()),
        MessageKind::Button => button.and_then(|b| b.text.owned()),
        MessageKind::Location => m.location.0.as_ref().and_then(location_text),
        _ => media_obj.and_then(|o| o.caption.owned()),
    };
    let reply_id = match kind {
        MessageKind::Interactive => reply.and_then(|r| r.id.owned()),
        MessageKind::Button => button.and_then(|b| b.payload.owned()),
        _ => None,
    };
    let media = media_obj.and_then(|o| {
        Some(Media {
            id: o.id.owned()?,
            mime_type: o.mime_type.owned(),
            sha256: o.sha256.owned(),
            caption: o.caption.owned(),
            filename: o.filename.owned(),
        })
    });
    let context_id = m.context.0.as_ref().and_then(|c| c.id.owned());
    let context_message_id = match kind {
        // The reacted-to message lives in `reaction`, not `context`.
        MessageKind::Reaction => m
            .reaction
            .0
            .as_ref()
            .and_then(|r| r.message_id.owned())
            .or(context_id),
        _ => context_id,
    };
    let timestamp = m.timestamp.0.unwrap_or(0);
    Some(InboundMessage {
        provider_message_id,
        provider_account_id: account.to_owned(),
        customer_id,
        customer_phone,
        customer_user_id,
        customer_name,
        timestamp,
        kind,
        text,
        reply_id,
        media,
        context_message_id,
        raw: Value::Null,
    })
}

/// Location text for the bot: "name, address", or whichever of the two is present.
fn location_text(l: &wire::Location) -> Option<String> {
    match (l.name.as_str(), l.address.as_str()) {
        (Some(n), Some(a)) => Some(format!("{n}, {a}")),
        (Some(s), None) | (None, Some(s)) => Some(s.to_owned()),
        (None, None) => None,
    }
}

fn status_update(account: &str, mut s: wire::Status) -> Option<StatusUpdate> {
    Some(StatusUpdate {
        provider_message_id: s.id.take()?,
        provider_account_id: account.to_owned(),
        status: s.status.take()?,
        timestamp: s.timestamp.0.unwrap_or(0),
        // Same key rule as `InboundMessage::customer_id`: the BSUID when sent.
        recipient_id: s.recipient_user_id.take().or_else(|| s.recipient_id.take()),
        errors: s.errors.objects().filter_map(provider_error).collect(),
        callback_data: s.biz_opaque_callback_data.take(),
    })
}

/// A Meta error object; `None` without a code (parley branches on codes only).
fn provider_error(mut e: wire::GraphError) -> Option<ProviderError> {
    Some(ProviderError {
        code: e.code.0?,
        title: e.title.take().or_else(|| e.message.take()),
        details: e.error_data.0.and_then(|mut d| d.details.take()),
    })
}
