//! The Graph API call itself: one POST to `{base}/{phone_number_id}/messages` with the
//! tenant's token, mapped to a message id or a classified error.
//!
//! Calls go through hyper's pooled client directly (TLS by rustls with the platform's
//! roots, HTTP/2 when the server offers it by ALPN, HTTP/1.1 otherwise): the two calls
//! a message were a third of parley's CPU under load, and going around reqwest's
//! per-request layers over the same hyper client (its redirect layer and the
//! response's address each parse the URL again, a retry layer, boxed bodies) saved
//! ~12 µs a call at 6500 msg/s (benches/HISTORY.md, run 31).
//! Only when an `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (less `NO_PROXY`) applies to the
//! Graph API's address do calls go through reqwest, which speaks to proxies.

use std::sync::Arc;
use std::time::Duration;

use super::GraphBody;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use secrecy::{ExposeSecret, SecretString};

use super::receipts::{Pipeliner, ReadReceipt};
use super::{SendError, classify_error, parse_send_response};
use crate::domain::message::SendFailure;

/// A Graph API answer larger than this is not read (Meta's are well under 1 KiB).
pub(super) const MAX_RESPONSE: usize = 1 << 20;
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole call: connecting, sending, and reading the answer.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Idle connections close after this.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The `Authorization` value for a tenant's token, marked sensitive; a token a header
/// cannot carry is a permanent failure (no retry mends it).
pub(super) fn bearer(token: &SecretString) -> Result<HeaderValue, SendError> {
    let mut value =
        HeaderValue::try_from(format!("Bearer {}", token.expose_secret())).map_err(|_| {
            SendError {
                class: SendFailure::Permanent,
                ..transport_error("the access token holds characters a header cannot carry")
            }
        })?;
    value.set_sensitive(true);
    Ok(value)
}

pub(super) fn transport_error(title: &str) -> SendError {
    SendError {
        http_status: 0,
        code: None,
        title: Some(title.to_string()),
        details: None,
        class: SendFailure::Retryable,
    }
}

/// The client for `PARLEY_WHATSAPP_API_BASE`. Cheap to clone (one pool).
#[derive(Clone)]
pub struct GraphClient {
    transport: Arc<Transport>,
    /// Read receipts pipelined, for a plain-HTTP base (`receipts.rs`).
    pipeliner: Option<Arc<Pipeliner>>,
    /// The base without a trailing '/', e.g. `https://graph.facebook.com/v21.0`.
    base: Arc<str>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per process, behind an Arc, matched on every call"
)]
enum Transport {
    Direct(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
    Proxied(reqwest::Client),
}

/// The error for a base that is not an absolute http(s) address.
#[derive(Debug, thiserror::Error)]
#[error("the WhatsApp API base {0:?} is not an http:// or https:// address")]
pub struct BadBase(String);

impl GraphClient {
    /// A client for `api_base` keeping up to `max_idle` idle connections, trusting the
    /// platform's roots, through a proxy when the environment names one for the base.
    pub fn new(api_base: &str, max_idle: usize) -> Result<Self, BadBase> {
        let base = checked_base(api_base)?;
        if needs_proxy(&Matcher::from_env(), &base) {
            // reqwest reads the same variables itself.
            return Ok(Self::proxied(base, reqwest::Client::builder(), max_idle));
        }
        Ok(Self::direct(base, max_idle, platform_tls()))
    }

    /// A direct client trusting what `tls` trusts (tests: a private CA).
    pub fn with_tls(
        api_base: &str,
        max_idle: usize,
        tls: rustls::ClientConfig,
    ) -> Result<Self, BadBase> {
        Ok(Self::direct(checked_base(api_base)?, max_idle, tls))
    }

    /// A client that sends every call through the HTTP proxy at `proxy` (tests).
    pub fn through_proxy(api_base: &str, proxy: &str) -> Result<Self, BadBase> {
        let base = checked_base(api_base)?;
        let proxy = reqwest::Proxy::all(proxy).map_err(|_| BadBase(proxy.to_string()))?;
        // A test's handful of calls: a few idle connections are plenty.
        let max_idle = 8;
        Ok(Self::proxied(
            base,
            reqwest::Client::builder().proxy(proxy),
            max_idle,
        ))
    }

    /// Calls through reqwest (which speaks to proxies), with the direct client's
    /// timeouts and pool bounds.
    fn proxied(base: http::Uri, builder: reqwest::ClientBuilder, max_idle: usize) -> Self {
        let client = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(max_idle)
            .build()
            .expect("the TLS backend is built in");
        Self {
            transport: Arc::new(Transport::Proxied(client)),
            pipeliner: None,
            base: base_str(&base),
        }
    }

    fn direct(base: http::Uri, max_idle: usize, mut tls: rustls::ClientConfig) -> Self {
        // The connector offers h2 and http/1.1 by ALPN itself (and insists on setting them).
        tls.alpn_protocols.clear();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Self {
            transport: Arc::new(Transport::Direct(client)),
            pipeliner: Pipeliner::for_base(&base, max_idle).map(Arc::new),
            base: base_str(&base),
        }
    }

    /// With `false`, read receipts are never pipelined: each goes through the pool on
    /// its own (for a plain-HTTP gateway that mishandles HTTP/1.1 pipelining).
    pub fn pipelining_receipts(mut self, on: bool) -> Self {
        if !on {
            self.pipeliner = None;
        }
        self
    }

    /// Whether calls go through a proxy (reqwest) rather than hyper's client directly.
    pub fn is_proxied(&self) -> bool {
        matches!(*self.transport, Transport::Proxied(_))
    }

    /// Sends a message; returns Meta's id for it (`messages[0].id`).
    pub async fn send(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        body: &GraphBody,
    ) -> Result<String, SendError> {
        let (status, bytes) = self.post(phone_number_id, token, body).await?;
        if (200..300).contains(&status)
            && let Some(id) = parse_send_response(&bytes)
        {
            return Ok(id);
        }
        Err(classify_error(status, &bytes))
    }

    /// Marks an inbound message read (no id comes back; any 2xx is success).
    pub async fn mark_read(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        message_id: &str,
    ) -> Result<(), SendError> {
        let body = super::mark_read_body(message_id, false);
        let (status, bytes) = self.post(phone_number_id, token, &body).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(classify_error(status, &bytes))
        }
    }

    /// Marks inbound messages read, one result each in order: pipelined on shared
    /// connections to a plain-HTTP base, side by side through the pool otherwise.
    pub async fn mark_read_all(&self, receipts: &[ReadReceipt<'_>]) -> Vec<Result<(), SendError>> {
        if let Some(pipeliner) = &self.pipeliner {
            return pipeliner.mark_read_all(receipts).await;
        }
        futures_util::future::join_all(
            receipts
                .iter()
                .map(|r| self.mark_read(r.phone_number_id, r.token, r.message_id)),
        )
        .await
    }

    async fn post(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        body: &GraphBody,
    ) -> Result<(u16, Bytes), SendError> {
        let address = messages_address(&self.base, phone_number_id);
        let body = body.0.clone();
        let bearer = bearer(token)?;
        match &*self.transport {
            Transport::Direct(client) => {
                let uri = http::Uri::try_from(address)
                    .map_err(|_| transport_error("the phone number id makes no address"))?;
                let mut request = http::Request::new(Full::new(body));
                *request.method_mut() = http::Method::POST;
                *request.uri_mut() = uri;
                let headers = request.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(AUTHORIZATION, bearer);
                let call = async {
                    let response = client
                        .request(request)
                        .await
                        .map_err(|_| transport_error("connection failed"))?;
                    let status = response.status().as_u16();
                    let bytes = Limited::new(response.into_body(), MAX_RESPONSE)
                        .collect()
                        .await
                        .map_err(|_| transport_error("response body lost"))?
                        .to_bytes();
                    Ok((status, bytes))
                };
                // A timeout is ambiguous (Meta may have accepted); retried, see README.
                tokio::time::timeout(CALL_TIMEOUT, call)
                    .await
                    .unwrap_or_else(|_| Err(transport_error("timeout")))
            }
            Transport::Proxied(client) => {
                let response = client
                    .post(address)
                    .header(AUTHORIZATION, bearer)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| {
                        transport_error(if e.is_timeout() {
                            "timeout"
                        } else {
                            "connection failed"
                        })
                    })?;
                let status = response.status().as_u16();
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|_| transport_error("response body lost"))?;
                Ok((status, bytes))
            }
        }
    }
}

/// Checks that this system has CA certificates to check TLS servers against (the Graph
/// API's, LLM providers'): without any, every HTTPS client parley builds would fail.
pub fn check_system_roots() -> anyhow::Result<()> {
    rustls_platform_verifier::Verifier::new(crypto_provider())
        .map(drop)
        .map_err(|_| {
            anyhow::anyhow!(
                "no CA certificates could be loaded from this system, so parley cannot check \
             the TLS certificates of Meta's Graph API or of LLM providers: install the \
             system's CA bundle (Debian/Ubuntu: apt-get install ca-certificates) or point \
             SSL_CERT_FILE at a PEM file of CA certificates"
            )
        })
}

/// The rustls configuration reqwest used too: aws-lc-rs, TLS 1.2 and 1.3, the
/// platform's certificate verifier (the system's roots).
fn platform_tls() -> rustls::ClientConfig {
    use rustls_platform_verifier::BuilderVerifierExt;
    rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .expect("aws-lc-rs supports the default TLS versions; the platform verifier loads")
        .with_no_client_auth()
}

/// aws-lc-rs, as everywhere in parley (sqlx, reqwest, lettre).
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Checks a `PARLEY_WHATSAPP_API_BASE`: an absolute http(s) address without a query.
pub fn check_base(api_base: &str) -> Result<(), BadBase> {
    checked_base(api_base).map(drop)
}

fn checked_base(api_base: &str) -> Result<http::Uri, BadBase> {
    let bad = || BadBase(api_base.to_string());
    let uri: http::Uri = api_base.parse().map_err(|_| bad())?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() && uri.query().is_none() => Ok(uri),
        _ => Err(bad()),
    }
}

fn base_str(base: &http::Uri) -> Arc<str> {
    base.to_string().trim_end_matches('/').into()
}

/// Whether `proxies` (the environment's) send requests for `base` through a proxy.
fn needs_proxy(proxies: &Matcher, base: &http::Uri) -> bool {
    proxies.intercept(base).is_some()
}

/// `{base}/{phone_number_id}/messages`, the number id percent-encoded as one path
/// segment (anything but unreserved characters).
fn messages_address(base: &str, phone_number_id: &str) -> String {
    let mut s = String::with_capacity(base.len() + phone_number_id.len() + 10);
    s.push_str(base);
    s.push('/');
    push_segment(&mut s, phone_number_id);
    s.push_str("/messages");
    s
}

/// Appends `segment` percent-encoded as one path segment (anything but unreserved
/// characters).
pub(super) fn push_segment(s: &mut String, segment: &str) {
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            s.push('%');
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(base: &str, id: &str) -> String {
        messages_address(&base_str(&checked_base(base).unwrap()), id)
    }

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
            assert_eq!(address(base, "1234567890"), want);
            assert!(http::Uri::try_from(want).is_ok());
        }
        // An id is one segment, whatever it holds.
        let odd = address("https://graph.facebook.com/v21.0", "12/../x?y é");
        assert_eq!(
            odd,
            "https://graph.facebook.com/v21.0/12%2F..%2Fx%3Fy%20%C3%A9/messages"
        );
        assert!(http::Uri::try_from(odd).is_ok());
    }

    #[test]
    fn a_base_must_be_an_absolute_http_address() {
        for bad in [
            "",
            "graph.facebook.com/v21.0",
            "ftp://graph.facebook.com",
            "/v21.0",
            "https://graph.facebook.com/v21.0?x=1",
            "https://exa mple.com",
        ] {
            assert!(checked_base(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(checked_base("https://graph.facebook.com/v21.0").is_ok());
        assert!(checked_base("http://127.0.0.1:8080").is_ok());
    }

    #[test]
    fn a_proxy_is_used_only_where_the_environment_says() {
        let graph = checked_base("https://graph.facebook.com/v21.0").unwrap();
        let local = checked_base("http://127.0.0.1:9/v21.0").unwrap();
        let none = Matcher::builder().build();
        assert!(!needs_proxy(&none, &graph));
        let https_only = Matcher::builder()
            .https("http://proxy.internal:3128")
            .build();
        assert!(needs_proxy(&https_only, &graph));
        assert!(!needs_proxy(&https_only, &local));
        let all_but_meta = Matcher::builder()
            .all("http://proxy.internal:3128")
            .no("graph.facebook.com")
            .build();
        assert!(!needs_proxy(&all_but_meta, &graph));
        assert!(needs_proxy(&all_but_meta, &local));
    }
}
