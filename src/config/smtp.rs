//! Outgoing email settings (`SMTP_URL`, or `SMTP_HOST`/`SMTP_PORT`/`SMTP_USER`/`SMTP_PASSWORD`/
//! `SMTP_TLS`, and `SMTP_FROM`), checked strictly at startup: a value that cannot work is an
//! error naming the variable (exit 78), never a server that fails its first email. Unset: email
//! is off and the features that need it say so on their pages.

use super::{ConfigError, Env, Secret};

/// A usable SMTP setup.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// `smtp://` (plain), `smtp://…?tls=required` (STARTTLS) or `smtps://` (TLS), credentials
    /// inside (redacted in `Debug`).
    pub url: Secret,
    /// `host:port`, for the startup log.
    pub server: String,
    /// The sender, as `Name <address>` or `address` (validated).
    pub from: String,
}

/// `SMTP_TLS`: how the connection is secured when the URL is built from its parts.
fn scheme_of(tls: &str) -> Option<(&'static str, &'static str, u16)> {
    match tls {
        "none" => Some(("smtp", "", 25)),
        "starttls" => Some(("smtp", "?tls=required", 587)),
        "tls" => Some(("smtps", "", 465)),
        _ => None,
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The SMTP settings, `None` when no server is configured.
pub fn from_env(env: &Env) -> Result<Option<SmtpConfig>, ConfigError> {
    let url = match (env.get("SMTP_URL"), env.get("SMTP_HOST")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "SMTP_HOST",
                "set either SMTP_URL or SMTP_HOST (with SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_TLS), not both",
            ));
        }
        (Some(url), None) => url.to_string(),
        (None, Some(host)) => {
            if host.contains(['/', '@', ' ']) {
                return Err(ConfigError::new(
                    "SMTP_HOST",
                    "a host name or address, nothing else",
                ));
            }
            let tls = env
                .get("SMTP_TLS")
                .unwrap_or("starttls")
                .to_ascii_lowercase();
            let (scheme, query, default_port) = scheme_of(&tls)
                .ok_or_else(|| ConfigError::new("SMTP_TLS", "must be none, starttls or tls"))?;
            let port = env.number("SMTP_PORT", default_port)?;
            let auth = match (env.get("SMTP_USER"), env.get("SMTP_PASSWORD")) {
                (Some(user), Some(password)) => format!("{}:{}@", encode(user), encode(password)),
                (None, None) => String::new(),
                (Some(_), None) => {
                    return Err(ConfigError::new(
                        "SMTP_PASSWORD",
                        "must be set with SMTP_USER",
                    ));
                }
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        "SMTP_USER",
                        "must be set with SMTP_PASSWORD",
                    ));
                }
            };
            format!("{scheme}://{auth}{host}:{port}{query}")
        }
        (None, None) => {
            if env.get("SMTP_FROM").is_some() {
                return Err(ConfigError::new(
                    "SMTP_URL",
                    "SMTP_FROM is set but no server is (SMTP_URL or SMTP_HOST)",
                ));
            }
            return Ok(None);
        }
    };
    let parsed = url::Url::parse(&url)
        .map_err(|e| ConfigError::new("SMTP_URL", format!("not a valid URL: {e}")))?;
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let ok = matches!(
        (parsed.scheme(), tls.as_deref()),
        ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None)
    );
    if !ok || parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(
            "SMTP_URL",
            "must be smtp://[user:password@]host[:port][?tls=required|opportunistic] or smtps://[user:password@]host[:port]",
        ));
    }
    // The transport is built from the same URL when the first email is sent; check it now.
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&url)
        .map_err(|e| ConfigError::new("SMTP_URL", format!("unusable: {e}")))?;
    let from = env
        .get("SMTP_FROM")
        .ok_or_else(|| ConfigError::new("SMTP_FROM", "must be set when SMTP is configured"))?;
    from.parse::<lettre::message::Mailbox>().map_err(|e| {
        ConfigError::new(
            "SMTP_FROM",
            format!("not an email address (Name <address>): {e}"),
        )
    })?;
    let server = format!(
        "{}:{}",
        parsed.host_str().unwrap_or_default(),
        parsed
            .port()
            .unwrap_or(if parsed.scheme() == "smtps" { 465 } else { 25 })
    );
    Ok(Some(SmtpConfig {
        url: Secret::new(url),
        server,
        from: from.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<SmtpConfig>, ConfigError> {
        from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn unset_is_off_and_a_url_or_parts_make_a_server() {
        assert!(parse(&[]).unwrap().is_none());
        let c = parse(&[
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
            ("SMTP_FROM", "SuperInsights <si@example.com>"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.server, "127.0.0.1:2525");
        let c = parse(&[
            ("SMTP_HOST", "mail.example.com"),
            ("SMTP_USER", "me@example.com"),
            ("SMTP_PASSWORD", "p@ss word"),
            ("SMTP_FROM", "si@example.com"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            c.url.expose(),
            "smtp://me%40example.com:p%40ss%20word@mail.example.com:587?tls=required"
        );
        assert!(
            !format!("{c:?}").contains("ss%20word"),
            "the password is redacted"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let from = ("SMTP_FROM", "si@example.com");
        for (pairs, var) in [
            (
                vec![("SMTP_URL", "http://mail.example.com"), from],
                "SMTP_URL",
            ),
            (
                vec![("SMTP_URL", "smtp://mail.example.com?tls=maybe"), from],
                "SMTP_URL",
            ),
            (vec![("SMTP_URL", "not a url"), from], "SMTP_URL"),
            (vec![("SMTP_URL", "smtp://mail.example.com")], "SMTP_FROM"),
            (
                vec![
                    ("SMTP_URL", "smtp://mail.example.com"),
                    ("SMTP_FROM", "nobody"),
                ],
                "SMTP_FROM",
            ),
            (vec![from], "SMTP_URL"),
            (
                vec![("SMTP_HOST", "mail.example.com"), ("SMTP_TLS", "ssl"), from],
                "SMTP_TLS",
            ),
            (
                vec![("SMTP_HOST", "mail.example.com"), ("SMTP_PORT", "x"), from],
                "SMTP_PORT",
            ),
            (
                vec![("SMTP_HOST", "mail.example.com"), ("SMTP_USER", "u"), from],
                "SMTP_PASSWORD",
            ),
            (
                vec![("SMTP_HOST", "h"), ("SMTP_URL", "smtp://h"), from],
                "SMTP_HOST",
            ),
        ] {
            assert_eq!(parse(&pairs).unwrap_err().var, var, "{pairs:?}");
        }
    }
}
