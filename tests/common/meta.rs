//! A stand-in for Meta's Graph API (wiremock) and builders for signed webhooks.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers a send like Meta: 200 with a fresh `wamid` per message.
pub struct MetaAccepts(pub AtomicU64);

impl Respond for MetaAccepts {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let to = body["to"]
            .as_str()
            .or(body["recipient"].as_str())
            .unwrap_or("")
            .to_string();
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": format!("wamid.OUT{n:08}")}]
        }))
    }
}

/// Mounts "accept every text send" and "accept every mark-as-read".
pub async fn meta_accepting_everything(server: &MockServer) {
    mount_text_sends(server).await;
    mount_read_receipts(server).await;
}

/// Mounts "accept every text send", each answered with a new message id.
pub async fn mount_text_sends(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/v25\.0/\d+/messages$"))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(MetaAccepts(AtomicU64::new(1)))
        .mount(server)
        .await;
}

pub async fn mount_read_receipts(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/v25\.0/\d+/messages$"))
        .and(body_partial_json(json!({"status": "read"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(server)
        .await;
}

/// A Graph error body as Meta sends it.
pub fn meta_error(code: i64, title: &str) -> Value {
    json!({"error": {"message": format!("(#{code}) {title}"), "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": title}, "fbtrace_id": "AbCdEf123"}})
}

/// One text send Meta received.
#[derive(Debug, Clone)]
pub struct Sent {
    pub phone_number_id: String,
    pub authorization: String,
    pub to: String,
    pub text: String,
}

/// Every text message (not read receipts) the mock received, in order.
pub async fn sent_texts(server: &MockServer) -> Vec<Sent> {
    let reqs = server.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            if body["type"] != "text" {
                return None;
            }
            let pnid = r
                .url
                .path()
                .trim_start_matches("/v25.0/")
                .trim_end_matches("/messages")
                .to_string();
            Some(Sent {
                phone_number_id: pnid,
                authorization: r
                    .headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
                to: body["to"]
                    .as_str()
                    .or(body["recipient"].as_str())
                    .unwrap_or("")
                    .to_string(),
                text: body["text"]["body"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Read receipts the mock received (the message ids marked read).
pub async fn read_receipts(server: &MockServer) -> Vec<String> {
    let reqs = server.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            (body["status"] == "read")
                .then(|| body["message_id"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

/// Asks `seen` until it holds `n` items (at most 15 s), then once more 300 ms later:
/// long enough for a duplicate to show up if one were coming.
pub async fn wait_for<T, F: std::future::Future<Output = Vec<T>>>(
    n: usize,
    seen: impl Fn() -> F,
) -> Vec<T> {
    for _ in 0..300 {
        if seen().await.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen().await
}

/// Waits until `n` texts were sent, then a little longer to catch extras.
pub async fn wait_for_texts(server: &MockServer, n: usize) -> Vec<Sent> {
    wait_for(n, || sent_texts(server)).await
}

/// Waits until the mock has received `n` read receipts, then a little longer for any
/// extra one; the message ids marked read.
pub async fn wait_for_read_receipts(server: &MockServer, n: usize) -> Vec<String> {
    wait_for(n, || read_receipts(server)).await
}

/// A webhook body with one text message, shaped like Meta's, sent now.
pub fn text_webhook(phone_number_id: &str, from: &str, wamid: &str, text: &str) -> String {
    text_webhook_at(
        phone_number_id,
        from,
        wamid,
        text,
        chrono::Utc::now().timestamp(),
    )
}

/// A webhook body with one text message the customer sent at `timestamp` (Unix seconds).
pub fn text_webhook_at(
    phone_number_id: &str,
    from: &str,
    wamid: &str,
    text: &str,
    timestamp: i64,
) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": timestamp.to_string(), "type": "text", "text": {"body": text}}]
        }}]}]
    })
    .to_string()
}

/// A webhook body with one status for a message we sent.
pub fn status_webhook(phone_number_id: &str, wamid: &str, status: &str, to: &str) -> String {
    let mut st =
        json!({"id": wamid, "status": status, "timestamp": "1767225700", "recipient_id": to});
    if status == "failed" {
        st["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": phone_number_id},
            "statuses": [st]
        }}]}]
    })
    .to_string()
}

/// The `X-Hub-Signature-256` value for `body` under `secret`.
pub fn sign(secret: &str, body: &str) -> String {
    parley::channels::whatsapp::sign(secret.as_bytes(), body.as_bytes())
}
