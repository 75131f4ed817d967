//! Security headers, added to every answer on its way out (the outermost layer, so error pages,
//! 404s and 429s get them too): `X-Content-Type-Options: nosniff` on everything; on HTML pages
//! also a Content-Security-Policy, frame protection and a referrer policy. JSON, the SDK script
//! and static files get no CSP (it only means something to documents), so `/v1` and `/sdk`
//! keep working cross-origin exactly as before.
//!
//! The policy is one the pages satisfy as written: scripts, styles and data only from this
//! origin, no inline script or handler (`static/js/app.js` wires `data-autosubmit`/`data-confirm`;
//! the `<script type="application/json">` data blocks are not executed, so CSP leaves them
//! alone), and charts draw on canvases. The browser tests fail on any violation.

use axum::{
    http::{HeaderMap, HeaderValue, header},
    response::Response,
};

/// The Content-Security-Policy of every HTML page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Referrer policy of HTML pages that do not set their own (public links say `no-referrer`):
/// full URLs within this site, nothing to other sites (project ids stay here).
pub const REFERRER_POLICY: &str = "same-origin";

/// Adds the headers to `response` (a `map_response` layer).
pub async fn security_headers(mut response: Response) -> Response {
    apply(response.headers_mut());
    response
}

fn apply(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !is_html(headers) {
        return;
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::REFERRER_POLICY) {
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static(REFERRER_POLICY),
        );
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..9)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/html"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_for(content_type: Option<&str>, referrer: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        if let Some(r) = referrer {
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_str(r).unwrap());
        }
        apply(&mut headers);
        headers
    }

    #[test]
    fn html_gets_the_policy_and_frame_protection() {
        let h = headers_for(Some("text/html; charset=utf-8"), None);
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin");
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[test]
    fn a_page_keeps_its_own_referrer_policy() {
        let h = headers_for(Some("TEXT/HTML"), Some("no-referrer"));
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    }

    #[test]
    fn other_answers_only_get_nosniff() {
        for ct in [
            Some("application/json"),
            Some("application/javascript; charset=utf-8"),
            Some("text/css"),
            None,
        ] {
            let h = headers_for(ct, None);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{ct:?}");
            assert!(!h.contains_key(header::CONTENT_SECURITY_POLICY), "{ct:?}");
            assert!(!h.contains_key(header::X_FRAME_OPTIONS), "{ct:?}");
        }
    }
}
