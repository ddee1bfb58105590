//! The Graph API client over TLS (the loop's tests reach wiremock over plain HTTP): a
//! local HTTPS server with a certificate from a private CA (tests/fixtures/tls, valid
//! until 2126) stands in for graph.facebook.com.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parley::channels::whatsapp::{self, GraphClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::SecretString;
use serde_json::{Value, json};

const PHONE_ID: &str = "106540352242922";
const TOKEN: &str = "EAAG-graph-client-test-token";
const SEND_OK: &str = r#"{"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}"#;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration that trusts the test CA only.
fn trusting_test_ca() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: http::Version,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// An HTTPS server on 127.0.0.1 offering `alpn`, answering every POST like Meta's send.
async fn graph_over_tls(alpn: &[&[u8]]) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let log = log.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let header = |name| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
                                    .map(str::to_string)
                            };
                            let mut seen = Seen {
                                version: req.version(),
                                path: req.uri().path().to_string(),
                                authorization: header(http::header::AUTHORIZATION),
                                content_type: header(http::header::CONTENT_TYPE),
                                body: Value::Null,
                            };
                            let bytes = req.into_body().collect().await.unwrap().to_bytes();
                            seen.body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            log.lock().unwrap().push(seen);
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(SEND_OK.as_bytes())))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, seen)
}

fn reply() -> whatsapp::GraphBody {
    whatsapp::text_message_body("16505551234", false, "We open at nine.", None)
}

#[tokio::test]
async fn a_reply_goes_over_tls_by_http2_when_the_server_offers_it() {
    let (port, seen) = graph_over_tls(&[b"h2", b"http/1.1"]).await;
    let client = GraphClient::with_tls(
        &format!("https://localhost:{port}/v21.0/"),
        8,
        trusting_test_ca(),
    )
    .unwrap();
    assert!(!client.is_proxied());
    let token = SecretString::from(TOKEN);
    let id = client.send(PHONE_ID, &token, &reply()).await.unwrap();
    assert_eq!(
        id,
        "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    );
    client
        .mark_read(PHONE_ID, &token, "wamid.inbound-1")
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(s.version, http::Version::HTTP_2);
        assert_eq!(s.path, format!("/v21.0/{PHONE_ID}/messages"));
        assert_eq!(
            s.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(seen[0].body, reply().json());
    assert_eq!(
        seen[1].body,
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.inbound-1"})
    );
}

#[tokio::test]
async fn a_reply_goes_over_tls_by_http1_to_a_server_without_http2() {
    let (port, seen) = graph_over_tls(&[b"http/1.1"]).await;
    let client = GraphClient::with_tls(
        &format!("https://127.0.0.1:{port}/v21.0"),
        8,
        trusting_test_ca(),
    )
    .unwrap();
    let token = SecretString::from(TOKEN);
    // Several calls at once share the pool; each is answered.
    let body = reply();
    let calls = (0..20).map(|_| client.send(PHONE_ID, &token, &body));
    for sent in futures_util::future::join_all(calls).await {
        assert!(sent.unwrap().starts_with("wamid."));
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 20);
    assert!(seen.iter().all(|s| s.version == http::Version::HTTP_11));
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}")))
    );
}

#[tokio::test]
async fn a_server_whose_certificate_the_system_does_not_trust_gets_nothing() {
    let (port, seen) = graph_over_tls(&[b"h2", b"http/1.1"]).await;
    // The production client: the platform's roots, which do not hold the test CA.
    let client = GraphClient::new(&format!("https://localhost:{port}/v21.0"), 8).unwrap();
    let token = SecretString::from(TOKEN);
    let err = client.send(PHONE_ID, &token, &reply()).await.unwrap_err();
    assert_eq!(err.http_status, 0);
    assert_eq!(err.title.as_deref(), Some("connection failed"));
    assert!(
        seen.lock().unwrap().is_empty(),
        "the token reached an untrusted server"
    );
}

#[tokio::test]
async fn calls_go_through_a_proxy_when_one_is_configured() {
    use wiremock::matchers::{header, method, path};
    // wiremock plays the proxy: a plain-HTTP target is asked for in absolute form.
    let proxy = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PHONE_ID}/messages")))
        .and(header("authorization", &*format!("Bearer {TOKEN}")))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_raw(SEND_OK, "application/json"),
        )
        .expect(1)
        .mount(&proxy)
        .await;
    let client = GraphClient::through_proxy("http://graph.invalid/v21.0", &proxy.uri()).unwrap();
    assert!(client.is_proxied());
    let token = SecretString::from(TOKEN);
    let id = client.send(PHONE_ID, &token, &reply()).await.unwrap();
    assert!(id.starts_with("wamid."));
    let got = proxy.received_requests().await.unwrap();
    assert_eq!(
        got[0].headers.get("host").and_then(|h| h.to_str().ok()),
        Some("graph.invalid")
    );
}

#[test]
fn a_base_that_is_no_http_address_is_refused() {
    for bad in ["graph.facebook.com/v21.0", "ftp://graph.facebook.com", ""] {
        assert!(GraphClient::new(bad, 8).is_err(), "{bad:?}");
    }
}
