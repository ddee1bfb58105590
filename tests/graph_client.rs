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

/// A direct client for `base` that trusts the test CA only.
fn trusting_client(base: &str) -> GraphClient {
    GraphClient::with_tls(base, 8, trusting_test_ca()).unwrap()
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
    let client = trusting_client(&format!("https://localhost:{port}/v21.0/"));
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
    let client = trusting_client(&format!("https://127.0.0.1:{port}/v21.0"));
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

// ---------------------------------------------------------------------------------
// Read receipts in bulk (`GraphClient::mark_read_all`): pipelined on shared HTTP/1.1
// connections to a plain-HTTP base, through the pool to an HTTPS one.

/// A batch's receipts as the sender makes them: `(phone number id, token, message id)`.
fn receipts<'a>(batch: &'a [(String, SecretString, String)]) -> Vec<whatsapp::ReadReceipt<'a>> {
    batch
        .iter()
        .map(|(phone, token, id)| whatsapp::ReadReceipt {
            phone_number_id: phone,
            token,
            message_id: id,
        })
        .collect()
}

#[tokio::test]
async fn a_batch_of_read_receipts_reaches_meta_each_with_its_own_number_and_token() {
    use wiremock::matchers::{body_partial_json, method};
    let meta = wiremock::MockServer::start().await;
    // One message Meta no longer knows: its receipt fails with Meta's error, alone.
    wiremock::Mock::given(method("POST"))
        .and(body_partial_json(json!({"message_id": "wamid.gone"})))
        .respond_with(
            wiremock::ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100,
            "fbtrace_id": "AbC"}})),
        )
        .with_priority(1)
        .mount(&meta)
        .await;
    wiremock::Mock::given(method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&meta)
        .await;
    let client = GraphClient::new(&format!("{}/v21.0", meta.uri()), 8).unwrap();
    // Two tenants' numbers, interleaved, more than one pipeline's depth.
    let batch: Vec<(String, SecretString, String)> = (0..150)
        .map(|i| {
            let tenant = i % 2;
            let id = if i == 77 {
                "wamid.gone".to_string()
            } else {
                format!("wamid.in{i:03}")
            };
            (
                format!("10000000000000{tenant}"),
                SecretString::from(format!("tok-{tenant}")),
                id,
            )
        })
        .collect();
    let results = client.mark_read_all(&receipts(&batch)).await;
    assert_eq!(results.len(), 150);
    for (i, r) in results.iter().enumerate() {
        if i == 77 {
            let e = r.as_ref().unwrap_err();
            assert_eq!((e.http_status, e.code), (400, Some(100)));
        } else {
            assert!(r.is_ok(), "receipt {i}: {r:?}");
        }
    }
    let got = meta.received_requests().await.unwrap();
    assert_eq!(got.len(), 150, "each receipt once");
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["messaging_product"], "whatsapp");
            assert_eq!(body["status"], "read");
            let id = body["message_id"].as_str().unwrap().to_string();
            // Each receipt through its own tenant's number, with that tenant's token.
            let n: usize = id
                .strip_prefix("wamid.in")
                .map_or(77, |n| n.parse().unwrap());
            let tenant = n % 2;
            assert_eq!(
                r.url.path(),
                format!("/v21.0/10000000000000{tenant}/messages")
            );
            assert_eq!(
                r.headers.get("authorization").unwrap().to_str().unwrap(),
                format!("Bearer tok-{tenant}")
            );
            assert_eq!(
                r.headers.get("content-type").unwrap().to_str().unwrap(),
                "application/json"
            );
            id
        })
        .collect();
    seen.sort();
    let mut want: Vec<String> = batch.iter().map(|(_, _, id)| id.clone()).collect();
    want.sort();
    assert_eq!(seen, want);
}

/// A plain-HTTP server that reads requests and answers each with `answer(n)` (n counts
/// requests across connections); `Some(close_after)` closes a connection after that many
/// answers on it. Returns its address, the message ids it received in order, and how
/// many connections it accepted.
/// What `raw_graph` gives: its address, the message ids it received in order, and the
/// connections it accepted.
type RawGraph = (
    String,
    Arc<Mutex<Vec<String>>>,
    Arc<std::sync::atomic::AtomicUsize>,
);

async fn raw_graph(close_after: Option<usize>, answer: fn(usize) -> String) -> RawGraph {
    raw_graph_with(close_after, answer, false).await
}

/// `raw_graph`; with `one_per_read`, a gateway that mishandles pipelining: of each read
/// it answers the first whole request and drops the rest.
async fn raw_graph_with(
    close_after: Option<usize>,
    answer: fn(usize) -> String,
    one_per_read: bool,
) -> RawGraph {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (ids2, connections2) = (ids.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            connections2.fetch_add(1, Ordering::SeqCst);
            let (ids, requests) = (ids2.clone(), requests.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = 0;
                loop {
                    // Every whole request in the buffer, answered in one write.
                    let mut out = String::new();
                    loop {
                        let mut headers = [httparse::EMPTY_HEADER; 16];
                        let mut req = httparse::Request::new(&mut headers);
                        let Ok(httparse::Status::Complete(head)) = req.parse(&buf) else {
                            break;
                        };
                        let length: usize = req
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                            .unwrap();
                        if buf.len() < head + length {
                            break;
                        }
                        let body: Value =
                            serde_json::from_slice(&buf[head..head + length]).unwrap();
                        ids.lock()
                            .unwrap()
                            .push(body["message_id"].as_str().unwrap().to_string());
                        buf.drain(..head + length);
                        out.push_str(&answer(requests.fetch_add(1, Ordering::SeqCst)));
                        answered += 1;
                        if one_per_read {
                            buf.clear();
                        }
                        if close_after == Some(answered) {
                            break;
                        }
                    }
                    if !out.is_empty() && socket.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                    if close_after == Some(answered) {
                        // Unanswered requests behind these are dropped with the connection.
                        return;
                    }
                    let mut chunk = [0u8; 4096];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (address, ids, connections)
}

fn ok_length(_: usize) -> String {
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"success\":true}".into()
}

fn ok_chunked(_: usize) -> String {
    // Meta's edge answers some calls chunked; a trailer too.
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\n{\"succ\r\na;x=y\r\ness\":true}\r\n0\r\nx-trailer: 1\r\n\r\n".into()
}

fn batch_of(n: usize) -> Vec<(String, SecretString, String)> {
    (0..n)
        .map(|i| {
            (
                PHONE_ID.to_string(),
                SecretString::from(TOKEN),
                format!("wamid.in{i:03}"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_batch_of_read_receipts_shares_one_connection() {
    use std::sync::atomic::Ordering;
    let (address, ids, connections) = raw_graph(None, ok_chunked).await;
    let client = GraphClient::new(&format!("http://{address}/v21.0"), 8).unwrap();
    let batch = batch_of(40);
    let results = client.mark_read_all(&receipts(&batch)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(ids.lock().unwrap().len(), 40);
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    // The next batch reuses the idle connection.
    let results = client.mark_read_all(&receipts(&batch_of(3))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

/// Sends `n` receipts to a server that drops each connection after `close_after`
/// answers (without saying so); checks that every message was marked read and returns
/// how many connections it took.
async fn every_receipt_despite_closes(close_after: usize, n: usize) -> usize {
    let (address, ids, connections) = raw_graph(Some(close_after), ok_length).await;
    let client = GraphClient::new(&format!("http://{address}/v21.0"), 8).unwrap();
    let batch = batch_of(n);
    let results = client.mark_read_all(&receipts(&batch)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // Every message marked read; only the dropped ones were written twice.
    let mut got = ids.lock().unwrap().clone();
    let mut want: Vec<String> = batch.iter().map(|(_, _, id)| id.clone()).collect();
    want.sort();
    got.sort();
    got.dedup();
    assert_eq!(got, want);
    connections.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn receipts_a_closing_server_left_unanswered_go_out_on_a_new_connection() {
    // Three answers a connection: four connections at least.
    assert!(every_receipt_despite_closes(3, 10).await >= 4);
}

#[tokio::test]
async fn a_receipt_that_says_connection_close_ends_its_connection_but_not_the_batch() {
    use std::sync::atomic::Ordering;
    fn close_every_second(n: usize) -> String {
        let close = if n % 2 == 1 {
            "connection: close\r\n"
        } else {
            ""
        };
        format!("HTTP/1.1 200 OK\r\n{close}content-length: 16\r\n\r\n{{\"success\":true}}")
    }
    let (address, ids, connections) = raw_graph(None, close_every_second).await;
    let client = GraphClient::new(&format!("http://{address}/v21.0"), 8).unwrap();
    let results = client.mark_read_all(&receipts(&batch_of(6))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let got = ids.lock().unwrap().clone();
    for i in 0..6 {
        assert!(got.contains(&format!("wamid.in{i:03}")), "{got:?}");
    }
    assert!(connections.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn receipts_to_nobody_listening_fail_without_hanging() {
    // A port just closed: connecting is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = GraphClient::new(&format!("http://{address}/v21.0"), 8).unwrap();
    let results = client.mark_read_all(&receipts(&batch_of(5))).await;
    assert_eq!(results.len(), 5);
    for r in results {
        let e = r.unwrap_err();
        assert_eq!(e.title.as_deref(), Some("connection failed"));
    }
}

#[tokio::test]
async fn a_batch_of_read_receipts_goes_over_tls_too() {
    let (port, seen) = graph_over_tls(&[b"h2", b"http/1.1"]).await;
    let client = trusting_client(&format!("https://localhost:{port}/v21.0"));
    let batch = batch_of(5);
    let results = client.mark_read_all(&receipts(&batch)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|s| s.version == http::Version::HTTP_2));
    assert!(seen.iter().all(|s| s.body["status"] == "read"));
}

#[tokio::test]
async fn with_pipelining_off_receipts_reach_a_gateway_that_cannot_pipeline() {
    use std::sync::atomic::Ordering;
    let (address, ids, connections) = raw_graph_with(None, ok_length, true).await;
    let client = GraphClient::new(&format!("http://{address}/v21.0"), 64)
        .unwrap()
        .pipelining_receipts(false);
    let batch = batch_of(10);
    let results = client.mark_read_all(&receipts(&batch)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut got = ids.lock().unwrap().clone();
    got.sort();
    let want: Vec<String> = batch.iter().map(|(_, _, id)| id.clone()).collect();
    assert_eq!(got, want, "each receipt exactly once");
    // Side by side, each on a connection of its own.
    assert!(connections.load(Ordering::SeqCst) > 1);
}

#[tokio::test]
async fn a_server_that_closes_after_every_answer_still_gets_every_receipt() {
    // As an HTTP/1.0 server or a gateway without keep-alive: one answer a connection.
    assert!(every_receipt_despite_closes(1, 64).await >= 64);
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_not_what_the_next_batch_gets() {
    // Three answers a connection, then the server drops it without saying so: the
    // first batch leaves it in the pool, closed.
    let (address, ids, _) = raw_graph(Some(3), ok_length).await;
    let client = GraphClient::new(&format!("http://{address}/v21.0"), 8).unwrap();
    let first = batch_of(3);
    assert!(
        client
            .mark_read_all(&receipts(&first))
            .await
            .iter()
            .all(Result::is_ok)
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let second: Vec<_> = (0..5)
        .map(|i| {
            (
                PHONE_ID.to_string(),
                SecretString::from(TOKEN),
                format!("wamid.second{i}"),
            )
        })
        .collect();
    let results = client.mark_read_all(&receipts(&second)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let got = ids.lock().unwrap().clone();
    for (_, _, id) in &second {
        assert!(got.contains(id), "{id} not marked read: {got:?}");
    }
}

#[tokio::test]
async fn a_garbled_answer_fails_its_receipts_without_harm() {
    fn huge_chunk(_: usize) -> String {
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nX\r\nffffffffffffffff\r\n".into()
    }
    fn signed_length(_: usize) -> String {
        "HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\n{}".into()
    }
    for answer in [huge_chunk as fn(usize) -> String, signed_length] {
        let (address, _, _) = raw_graph(None, answer).await;
        let client = GraphClient::new(&format!("http://{address}/v21.0"), 8).unwrap();
        let results = client.mark_read_all(&receipts(&batch_of(3))).await;
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(Result::is_err), "{results:?}");
    }
}
