//! The Graph API call itself: one POST to `{base}/{phone_number_id}/messages` with the
//! tenant's token, mapped to a message id or a classified error.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{SendError, classify_error, parse_send_response};
use crate::domain::message::SendFailure;

fn transport_error(title: &str) -> SendError {
    SendError {
        http_status: 0,
        code: None,
        title: Some(title.to_string()),
        details: None,
        class: SendFailure::Retryable,
    }
}

async fn post(
    http: &reqwest::Client,
    api_base: &str,
    phone_number_id: &str,
    token: &SecretString,
    body: &Value,
) -> Result<(u16, bytes::Bytes), SendError> {
    let url = format!("{api_base}/{phone_number_id}/messages");
    let resp = http
        .post(url)
        .bearer_auth(token.expose_secret())
        .json(body)
        .send()
        .await
        .map_err(|e| {
            // A timeout is ambiguous (Meta may have accepted); retried, see README.
            transport_error(if e.is_timeout() {
                "timeout"
            } else {
                "connection failed"
            })
        })?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|_| transport_error("response body lost"))?;
    Ok((status, bytes))
}

/// Sends a message; returns Meta's id for it (`messages[0].id`).
pub async fn send(
    http: &reqwest::Client,
    api_base: &str,
    phone_number_id: &str,
    token: &SecretString,
    body: &Value,
) -> Result<String, SendError> {
    let (status, bytes) = post(http, api_base, phone_number_id, token, body).await?;
    if (200..300).contains(&status)
        && let Some(id) = parse_send_response(&bytes)
    {
        return Ok(id);
    }
    Err(classify_error(status, &bytes))
}

/// Marks an inbound message read (no id comes back; any 2xx is success).
pub async fn mark_read(
    http: &reqwest::Client,
    api_base: &str,
    phone_number_id: &str,
    token: &SecretString,
    message_id: &str,
) -> Result<(), SendError> {
    let body = super::mark_read_body(message_id, false);
    let (status, bytes) = post(http, api_base, phone_number_id, token, &body).await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(classify_error(status, &bytes))
    }
}
