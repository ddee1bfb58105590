//! Read receipts pipelined over HTTP/1.1, for a Graph API base that speaks plain HTTP
//! (a local gateway or sidecar that originates TLS, a mock).
//!
//! A read receipt is idempotent (marking a message read twice changes nothing) and best
//! effort, so a batch's receipts may share one connection: parley writes them all in
//! one go and reads the answers in order (HTTP/1.1 pipelining, RFC 9112 9.3.2), rather
//! than one request, one connection and two system calls each. Over HTTPS (Meta's
//! `graph.facebook.com` offers HTTP/2) the receipts go through the pooled client, where
//! HTTP/2 multiplexes them on one connection anyway. Replies are never pipelined: a
//! reply is not idempotent, and a pipeline cut short leaves unknown which requests the
//! server acted on.
//!
//! A connection the server closes part way (idle timeout, a keep-alive limit,
//! `Connection: close`) is not an error: the receipts it did not answer are written
//! again on a fresh connection.

use std::io;
use std::sync::Mutex;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::SendError;
use super::http::{
    CALL_TIMEOUT, CONNECT_TIMEOUT, IDLE_TIMEOUT, MAX_RESPONSE, bearer, push_segment,
};
use super::{classify_error, mark_read_body};

/// Most receipts written on one connection at once; a larger batch is spread over
/// several connections side by side.
const DEPTH: usize = 64;
/// A response head larger than this is refused (Meta's are well under 1 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// Idle connections a pipeline may find dead (answering nothing) before it opens a
/// fresh one instead; a fresh connection that answers nothing ends the pipeline.
const MAX_DEAD_IDLE: usize = 4;
/// Most response headers read (as hyper's client).
const MAX_HEADERS: usize = 100;

/// A read receipt to send: the customer's message, marked read through the number
/// that received it, with that number's token.
pub struct ReadReceipt<'a> {
    pub phone_number_id: &'a str,
    pub token: &'a SecretString,
    pub message_id: &'a str,
}

/// Pipelined receipts to one plain-HTTP address, with its own idle connections.
pub(super) struct Pipeliner {
    /// `host:port`, to connect to.
    address: String,
    /// The `Host` header: the base's authority as written.
    host: String,
    /// The base's path without a trailing '/' (e.g. `/v21.0`).
    prefix: String,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl Pipeliner {
    /// For a plain `http://` base; `None` for any other.
    pub(super) fn for_base(base: &http::Uri, max_idle: usize) -> Option<Self> {
        if base.scheme_str() != Some("http") {
            return None;
        }
        let authority = base.authority()?;
        let port = authority.port_u16().unwrap_or(80);
        Some(Self {
            address: format!("{}:{port}", authority.host()),
            // Without any `user:password@` (never sent in a header).
            host: authority
                .as_str()
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_string(),
            prefix: base.path().trim_end_matches('/').to_string(),
            idle: Mutex::new(Vec::new()),
            max_idle,
        })
    }

    /// Sends the receipts; one result each, in order.
    pub(super) async fn mark_read_all(
        &self,
        receipts: &[ReadReceipt<'_>],
    ) -> Vec<Result<(), SendError>> {
        let mut results: Vec<Option<Result<(), SendError>>> = Vec::with_capacity(receipts.len());
        // The requests, each written out once; a receipt whose token cannot be a header
        // fails here and is not sent.
        let mut requests = Vec::with_capacity(receipts.len());
        for (i, r) in receipts.iter().enumerate() {
            match self.request(r) {
                Ok(bytes) => {
                    requests.push((i, bytes));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut answers: Vec<Vec<Result<(), SendError>>> = requests
            .chunks(DEPTH)
            .map(|c| Vec::with_capacity(c.len()))
            .collect();
        futures_util::future::join_all(requests.chunks(DEPTH).zip(answers.iter_mut()).map(
            |(chunk, answers)| async move {
                // What was answered before the call's time ran out stands.
                let _ = tokio::time::timeout(CALL_TIMEOUT, self.pipeline(chunk, answers)).await;
            },
        ))
        .await;
        for (chunk, answer) in requests.chunks(DEPTH).zip(answers) {
            let mut answer = answer.into_iter();
            for (i, _) in chunk {
                results[*i] = Some(
                    answer
                        .next()
                        .unwrap_or_else(|| Err(super::http::transport_error("timeout"))),
                );
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(super::http::transport_error("not sent"))))
            .collect()
    }

    /// One receipt's request, whole.
    fn request(&self, r: &ReadReceipt<'_>) -> Result<Bytes, SendError> {
        let bearer = bearer(r.token)?;
        let body = mark_read_body(r.message_id, false).0;
        let mut out = BytesMut::with_capacity(256 + body.len());
        out.put_slice(b"POST ");
        out.put_slice(self.prefix.as_bytes());
        out.put_u8(b'/');
        let mut segment = String::with_capacity(r.phone_number_id.len());
        push_segment(&mut segment, r.phone_number_id);
        out.put_slice(segment.as_bytes());
        out.put_slice(b"/messages HTTP/1.1\r\nhost: ");
        out.put_slice(self.host.as_bytes());
        out.put_slice(b"\r\ncontent-type: application/json\r\nauthorization: ");
        out.put_slice(bearer.as_bytes());
        out.put_slice(b"\r\ncontent-length: ");
        out.put_slice(body.len().to_string().as_bytes());
        out.put_slice(b"\r\n\r\n");
        out.put_slice(&body);
        Ok(out.freeze())
    }

    /// Sends a chunk's requests (at most `DEPTH`) and reads their answers into
    /// `answers`, in order, on as few connections as the server allows; what no
    /// connection could be had or kept for is answered "connection failed".
    async fn pipeline(&self, chunk: &[(usize, Bytes)], answers: &mut Vec<Result<(), SendError>>) {
        // Ends: every pass but a bounded few answers at least one receipt.
        let mut dead_idle = 0;
        loop {
            let rest = &chunk[answers.len()..];
            if rest.is_empty() {
                break;
            }
            let idle = if dead_idle < MAX_DEAD_IDLE {
                self.take_idle()
            } else {
                None
            };
            let (mut conn, reused) = match idle {
                Some(c) => (c, true),
                None => match Conn::open(&self.address).await {
                    Ok(c) => (c, false),
                    Err(_) => break,
                },
            };
            let before = answers.len();
            let open = conn.exchange(rest, answers).await;
            if open {
                self.put_idle(conn);
            }
            // A server that closes after every answer or few still gets them all, one
            // connection after another. A fresh connection that answered nothing will
            // not do better next time; an idle one may have been closed meanwhile.
            if answers.len() == before {
                if !reused {
                    break;
                }
                dead_idle += 1;
            }
        }
        let missing = chunk.len() - answers.len();
        answers
            .extend((0..missing).map(|_| Err(super::http::transport_error("connection failed"))));
    }

    /// An idle connection that still looks usable: not idle too long, and nothing to
    /// read on it (a server's close, or bytes nobody asked for, such as a 408).
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(c) = idle.pop() {
            let quiet = matches!(
                c.stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            );
            if quiet && c.used.elapsed() < IDLE_TIMEOUT {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

/// One HTTP/1.1 connection and what has been read from it but not yet used.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    used: Instant,
}

/// What a response head says about the body that follows it.
#[derive(Debug, PartialEq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

#[derive(Debug, PartialEq)]
struct Head {
    status: u16,
    framing: Framing,
    /// The server closes the connection after this response.
    close: bool,
    len: usize,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Conn {
    async fn open(address: &str) -> io::Result<Self> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            used: Instant::now(),
        })
    }

    /// Writes the requests in one go and reads answers in order into `answers`; returns
    /// whether the connection may be used again. Stops at the first answer that closes
    /// the connection or at any error (what was not answered is for another connection).
    async fn exchange(
        &mut self,
        requests: &[(usize, Bytes)],
        answers: &mut Vec<Result<(), SendError>>,
    ) -> bool {
        let mut out = BytesMut::with_capacity(requests.iter().map(|(_, r)| r.len()).sum());
        for (_, r) in requests {
            out.put_slice(r);
        }
        // After a failed write (a server that answered some and closed), the answers it
        // sent before closing are still read.
        let written = self.stream.write_all(&out).await.is_ok();
        for _ in requests {
            match self.response().await {
                Ok((status, body, close)) => {
                    answers.push(if (200..300).contains(&status) {
                        Ok(())
                    } else {
                        Err(classify_error(status, &body))
                    });
                    if close {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        self.used = Instant::now();
        // Anything more than the answers asked for is a broken server.
        written && self.buf.is_empty()
    }

    /// Reads more into the buffer; an end of stream is an error (a response was due).
    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(8 * 1024);
        }
        match self.stream.read_buf(&mut self.buf).await? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }

    /// The next final response: status, body and whether the server closes after it.
    async fn response(&mut self) -> io::Result<(u16, Bytes, bool)> {
        loop {
            let head = loop {
                if let Some(head) = head(&self.buf)? {
                    break head;
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(invalid("response head too large"));
                }
                self.fill().await?;
            };
            self.buf.advance(head.len);
            // An interim answer (100 Continue, 103 Early Hints) precedes the real one.
            if (100..200).contains(&head.status) {
                continue;
            }
            let body = match head.framing {
                Framing::Empty => Bytes::new(),
                Framing::Length(n) => {
                    if n > MAX_RESPONSE {
                        return Err(invalid("response too large"));
                    }
                    while self.buf.len() < n {
                        self.fill().await?;
                    }
                    self.buf.split_to(n).freeze()
                }
                Framing::Chunked => self.chunked().await?,
                Framing::UntilClose => {
                    loop {
                        if self.buf.len() > MAX_RESPONSE {
                            return Err(invalid("response too large"));
                        }
                        match self.fill().await {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                            Err(e) => return Err(e),
                        }
                    }
                    self.buf.split().freeze()
                }
            };
            let close = head.close || head.framing == Framing::UntilClose;
            return Ok((head.status, body, close));
        }
    }

    /// A chunked body (RFC 9112 7.1), its trailers skipped.
    async fn chunked(&mut self) -> io::Result<Bytes> {
        let mut body = BytesMut::new();
        loop {
            let line = self.line().await?;
            let size = std::str::from_utf8(&line)
                .ok()
                .map(|l| l.split(';').next().unwrap_or("").trim())
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or_else(|| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body.freeze());
            }
            // `body` never exceeds the limit, so this cannot overflow (and `size + 2`
            // below stays small).
            if size > MAX_RESPONSE - body.len() {
                return Err(invalid("response too large"));
            }
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.put_slice(&self.buf[..size]);
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(invalid("chunk not followed by CRLF"));
            }
            self.buf.advance(size + 2);
        }
    }

    /// The next line without its CRLF.
    async fn line(&mut self) -> io::Result<Bytes> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(end).freeze();
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long"));
            }
            self.fill().await?;
        }
    }
}

/// Parses a response head at the start of `buf`: `None` until it is all there.
fn head(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(invalid("not an HTTP response")),
    };
    let status = response.code.ok_or_else(|| invalid("no status"))?;
    // HTTP/1.0 closes unless told otherwise; parley never asks it to keep the connection.
    let mut close = response.version != Some(1);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut encoded = false;
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| invalid("bad header"))?;
        if h.name.eq_ignore_ascii_case("content-length") {
            // A list of one value repeated is that value (RFC 9112 6.3); anything else,
            // or a sign, is an error.
            for v in value.split(',').map(str::trim) {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("bad content-length"));
                }
                let n: usize = v.parse().map_err(|_| invalid("bad content-length"))?;
                if length.is_some_and(|m| m != n) {
                    return Err(invalid("two content-lengths"));
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
    }
    // Both framings at once: answered as Transfer-Encoding says, never reused.
    close |= encoded && length.is_some();
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Empty
    } else if encoded {
        // Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    Ok(Some(Head {
        status,
        framing,
        close,
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_http_base_is_pipelined_and_its_parts_are_kept_apart() {
        let p = |base: &str| Pipeliner::for_base(&base.parse().unwrap(), 4);
        let local = p("http://127.0.0.1:9/v21.0/").unwrap();
        assert_eq!(
            (local.address.as_str(), local.host.as_str()),
            ("127.0.0.1:9", "127.0.0.1:9")
        );
        assert_eq!(local.prefix, "/v21.0");
        let named = p("http://user:secret@graph.internal/v21.0").unwrap();
        assert_eq!(
            (named.address.as_str(), named.host.as_str()),
            ("graph.internal:80", "graph.internal")
        );
        let v6 = p("http://[::1]:8080").unwrap();
        assert_eq!(
            (v6.address.as_str(), v6.prefix.as_str()),
            ("[::1]:8080", "")
        );
        assert!(p("https://graph.facebook.com/v21.0").is_none());
        let token = SecretString::from("tok");
        let request = local
            .request(&ReadReceipt {
                phone_number_id: "1 2",
                token: &token,
                message_id: "wamid.X",
            })
            .unwrap();
        let body = r#"{"messaging_product":"whatsapp","status":"read","message_id":"wamid.X"}"#;
        assert_eq!(
            std::str::from_utf8(&request).unwrap(),
            format!(
                "POST /v21.0/1%202/messages HTTP/1.1\r\nhost: 127.0.0.1:9\r\ncontent-type: application/json\r\n\
                 authorization: Bearer tok\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        );
        let bad = SecretString::from("tok\r\nx-injected: 1");
        assert!(
            local
                .request(&ReadReceipt {
                    phone_number_id: "1",
                    token: &bad,
                    message_id: "m"
                })
                .is_err()
        );
    }

    #[test]
    fn a_head_says_how_its_body_is_framed() {
        let h = |s: &str| head(s.as_bytes()).unwrap().unwrap();
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n";
        let ok = h(text);
        assert_eq!(
            (ok.status, ok.framing, ok.close),
            (200, Framing::Length(16), false)
        );
        // The head ends with its empty line; the body follows.
        assert_eq!(ok.len, text.len());
        let chunked = h(
            "HTTP/1.1 400 Bad Request\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 9\r\n\r\n",
        );
        assert_eq!(chunked.framing, Framing::Chunked);
        let closing =
            h("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\ncontent-length: 2\r\n\r\n");
        assert!(closing.close);
        let old = h("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n");
        assert!(old.close);
        let no_length = h("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(no_length.framing, Framing::UntilClose);
        assert_eq!(h("HTTP/1.1 204 No Content\r\n\r\n").framing, Framing::Empty);
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-len").unwrap().is_none());
        let repeated = h("HTTP/1.1 200 OK\r\ncontent-length: 16, 16\r\n\r\n");
        assert_eq!(repeated.framing, Framing::Length(16));
        let both = h("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n");
        assert!(both.close, "a response framed twice ends its connection");
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\n").is_err());
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-length: 16, 17\r\n\r\n").is_err());
        assert!(
            head(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").is_err()
        );
        assert!(head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }
}
