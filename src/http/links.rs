//! Absolute links the pages show (invite links, public links, the install snippet). They come
//! from `PUBLIC_URL`, or from the request's `Host` header only when that host is trusted: listed
//! in `ALLOWED_HOSTS`, or a loopback name or address outside production. A forged `Host` can
//! never put another site into a link someone copies; without a trusted base a link stays
//! relative and the page says how to fix it. Holds no other URL logic.

use crate::config::Config;
use axum::http::{HeaderMap, header};
use std::net::IpAddr;

/// What the install snippet shows in place of the address when there is no trusted one.
pub const UNKNOWN_BASE: &str = "https://YOUR-SUPERINSIGHTS-ADDRESS";

/// The `scheme://host[:port]` links start with, `None` when there is no trusted one.
pub fn base_url(config: &Config, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &config.public_url {
        return Some(url.clone());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    let (name, port) = split_host(host)?;
    let host = host.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    let listed = config
        .allowed_hosts
        .iter()
        .any(|allowed| *allowed == host || (*allowed == name && port.is_some()));
    if !(listed || (!config.production && is_loopback(&name))) {
        return None;
    }
    // Behind a trusted proxy that terminated TLS, the links are https too.
    let forwarded_https = config.trust_proxy > 0
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let scheme = if forwarded_https { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// `path` (starting with `/`) on the trusted base, or `path` alone (a relative link).
pub fn link(config: &Config, headers: &HeaderMap, path: &str) -> String {
    format!("{}{path}", base_url(config, headers).unwrap_or_default())
}

/// `host[:port]` split into name and port; `None` unless it is a well-formed host.
fn split_host(host: &str) -> Option<(&str, Option<&str>)> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        let (name, after) = host.split_at(end + 2);
        match after {
            "" => (name, None),
            p => (name, Some(p.strip_prefix(':')?)),
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = if name.starts_with('[') {
        name[1..name.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    (name_ok && port_ok).then_some((name, port))
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback(name: &str) -> bool {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name.ends_with(".localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use axum::http::HeaderValue;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_env(&Env::from_pairs(pairs.to_vec())).unwrap()
    }

    fn base(config: &Config, host: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        base_url(config, &headers)
    }

    #[test]
    fn public_url_wins_over_any_host() {
        let c = config(&[("PUBLIC_URL", "https://a.example")]);
        assert_eq!(
            base(&c, "evil.example").as_deref(),
            Some("https://a.example")
        );
    }

    #[test]
    fn only_listed_hosts_and_local_ones_in_development_are_used() {
        let c = config(&[("ALLOWED_HOSTS", "a.example,b.example:8080")]);
        assert_eq!(base(&c, "a.example").as_deref(), Some("http://a.example"));
        assert_eq!(
            base(&c, "A.Example:3000").as_deref(),
            Some("http://a.example:3000")
        );
        assert_eq!(
            base(&c, "b.example:8080").as_deref(),
            Some("http://b.example:8080")
        );
        assert_eq!(
            base(&c, "localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(
            base(&c, "127.0.0.1:4000").as_deref(),
            Some("http://127.0.0.1:4000")
        );
        assert_eq!(base(&c, "[::1]:4000").as_deref(), Some("http://[::1]:4000"));
        for hostile in [
            "evil.example",
            "b.example:9090",
            "a.example.evil.example",
            "a.example@evil.example",
            "a.example/evil",
            "evil.example#a.example",
            "a.example:",
            "a.example:99999",
            "[::1",
            "",
        ] {
            assert_eq!(base(&c, hostile), None, "{hostile:?}");
        }
        assert_eq!(base_url(&c, &HeaderMap::new()), None, "no Host at all");
    }

    #[test]
    fn loopback_is_not_trusted_in_production_unless_listed() {
        let mut pairs = vec![
            ("NODE_ENV", "production"),
            ("SESSION_SECRET", "a-long-random-value-1"),
            ("JWT_ACCESS_SECRET", "a-long-random-value-2"),
            ("JWT_REFRESH_SECRET", "a-long-random-value-3"),
        ];
        assert_eq!(base(&config(&pairs), "localhost:3000"), None);
        pairs.push(("ALLOWED_HOSTS", "localhost"));
        assert_eq!(
            base(&config(&pairs), "localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
    }

    #[test]
    fn a_trusted_proxy_can_say_https() {
        let c = config(&[("ALLOWED_HOSTS", "a.example"), ("TRUST_PROXY", "true")]);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a.example"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(base_url(&c, &headers).as_deref(), Some("https://a.example"));
        let c = config(&[("ALLOWED_HOSTS", "a.example")]);
        assert_eq!(base_url(&c, &headers).as_deref(), Some("http://a.example"));
    }

    #[test]
    fn links_are_relative_without_a_trusted_base() {
        let c = config(&[]);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("evil.example"));
        assert_eq!(
            link(&c, &headers, "/accept-invite?token=t"),
            "/accept-invite?token=t"
        );
    }
}
