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

/// `{api_base}/{phone_number_id}/messages`, from the base parsed once (the number id
/// percent-encoded as a path segment).
fn messages_url(api_base: &reqwest::Url, phone_number_id: &str) -> reqwest::Url {
    let mut url = api_base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push(phone_number_id).push("messages");
    }
    url
}

async fn post(
    http: &reqwest::Client,
    api_base: &reqwest::Url,
    phone_number_id: &str,
    token: &SecretString,
    body: &Value,
) -> Result<(u16, bytes::Bytes), SendError> {
    let url = messages_url(api_base, phone_number_id);
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
    api_base: &reqwest::Url,
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
    api_base: &reqwest::Url,
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

#[cfg(test)]
mod tests {
    use super::messages_url;

    #[test]
    fn the_messages_address_is_the_base_and_two_segments() {
        for (base, want) in [
            (
                "https://graph.facebook.com/v21.0",
                "https://graph.facebook.com/v21.0/1234567890/messages",
            ),
            (
                "http://127.0.0.1:9",
                "http://127.0.0.1:9/1234567890/messages",
            ),
            (
                "http://127.0.0.1:9/a/b/",
                "http://127.0.0.1:9/a/b/1234567890/messages",
            ),
        ] {
            let base = reqwest::Url::parse(base).unwrap();
            assert_eq!(messages_url(&base, "1234567890").as_str(), want);
        }
        // An id is one segment, whatever it holds.
        let base = reqwest::Url::parse("https://graph.facebook.com/v21.0").unwrap();
        assert_eq!(
            messages_url(&base, "12/../x?y").as_str(),
            "https://graph.facebook.com/v21.0/12%2F..%2Fx%3Fy/messages"
        );
    }
}
