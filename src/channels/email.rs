//! Email through an SMTP relay (escalation notifications): the relay from
//! `PARLEY_SMTP_URL`, the sender from `PARLEY_SMTP_FROM`, and whether a failure is
//! worth another try.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// A configured relay. Cheap to clone.
#[derive(Clone)]
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold the relay's password: never printed.
        f.debug_struct("EmailSender")
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// A send that did not go through.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EmailError {
    /// The relay refused for good (5xx, a bad address): do not retry.
    pub permanent: bool,
    pub message: String,
}

impl EmailSender {
    /// `url`: `smtp://host:25` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465` (TLS); `from`: `Name <addr@host>`.
    pub fn new(url: &SecretString, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| format!("PARLEY_SMTP_URL is not a usable SMTP URL ({e}); for example smtps://user:pass@smtp.example.com:465"))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        let from: Mailbox = from.parse().map_err(|e| {
            format!(
                "PARLEY_SMTP_FROM must be an address like \"parley <alerts@example.com>\" ({e})"
            )
        })?;
        Ok(Self { transport, from })
    }

    /// Sends one plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), EmailError> {
        let to: Mailbox = to.parse().map_err(|e| EmailError {
            permanent: true,
            message: format!("not an email address: {e}"),
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body.to_string())
            .map_err(|e| EmailError {
                permanent: true,
                message: format!("cannot build the message: {e}"),
            })?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| EmailError {
                permanent: e.is_permanent(),
                // lettre's text names the relay's answer, never the credentials.
                message: format!("smtp: {e}"),
            })
    }
}
