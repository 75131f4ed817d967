//! Sending email over SMTP (lettre, tokio, rustls): one [`Mailer`] per process, built from
//! `SMTP_*` at startup. Without SMTP configured it says so ([`MailError::NotConfigured`]) and the
//! pages that need it explain why the feature is unavailable. Holds no HTTP types.

use crate::config::smtp::SmtpConfig;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Attachment as MimeAttachment, Mailbox, MultiPart, header::ContentType},
};

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("email is not configured on this server (SMTP_URL or SMTP_HOST, and SMTP_FROM)")]
    NotConfigured,
    #[error("not a deliverable address: {0}")]
    BadAddress(String),
    /// The server refused or could not be reached; worth retrying later.
    #[error("the mail server did not take the message: {0}")]
    Send(String),
}

/// A file attached to an email.
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `application/pdf`.
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// An email to send: plain text, and an HTML alternative when given.
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// Files sent with it (a `multipart/mixed` message then).
    pub attachments: Vec<Attachment>,
}

pub struct Mailer {
    transport: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
}

impl Mailer {
    /// From the startup configuration (already validated by `config::smtp`).
    pub fn new(config: Option<&SmtpConfig>) -> Self {
        let transport = config.and_then(|c| {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(c.url.expose())
                .ok()?
                .timeout(Some(std::time::Duration::from_secs(20)))
                .build();
            let from = c.from.parse().ok()?;
            Some((transport, from))
        });
        Self { transport }
    }

    /// A mailer that sends nothing (email not configured).
    pub fn disabled() -> Self {
        Self { transport: None }
    }

    pub fn is_configured(&self) -> bool {
        self.transport.is_some()
    }

    /// Sends `email`; `kind` names it in the metrics (`password_reset`, `report`).
    pub async fn send(&self, kind: &'static str, email: Email) -> Result<(), MailError> {
        let Some((transport, from)) = &self.transport else {
            return Err(MailError::NotConfigured);
        };
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::BadAddress(email.to.clone()))?;
        let builder = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(email.subject);
        let message = if email.attachments.is_empty() {
            match email.html {
                Some(html) => {
                    builder.multipart(MultiPart::alternative_plain_html(email.text, html))
                }
                None => builder.header(ContentType::TEXT_PLAIN).body(email.text),
            }
        } else {
            let body = match email.html {
                Some(html) => MultiPart::alternative_plain_html(email.text, html),
                None => MultiPart::mixed().singlepart(
                    lettre::message::SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(email.text),
                ),
            };
            let mut mixed = MultiPart::mixed().multipart(body);
            for a in email.attachments {
                let ct = ContentType::parse(a.content_type)
                    .map_err(|e| MailError::Send(format!("attachment type: {e}")))?;
                mixed = mixed.singlepart(MimeAttachment::new(a.filename).body(a.bytes, ct));
            }
            builder.multipart(mixed)
        }
        .map_err(|e| MailError::Send(e.to_string()))?;
        match transport.send(message).await {
            Ok(_) => {
                crate::telemetry::email_sent(kind, "sent");
                Ok(())
            }
            Err(e) => {
                crate::telemetry::email_sent(kind, "failed");
                Err(MailError::Send(e.to_string()))
            }
        }
    }
}
