//! `GET /sdk/superinsights.js`: the browser SDK, compiled into the binary. Production caches it
//! (a day at the plain URL, a year and `immutable` at the versioned URL `?v=<sdk_version()>`) with
//! an ETag of its content and 304s; development sends `no-store`. The SDK's source, build and size
//! budget: `static/sdk/`, `scripts/build-sdk`, docs/features/sdk.md.

use crate::{config::Config, state::AppState};
use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// The minified SDK (built from `static/sdk/superinsights.src.js` by `scripts/build-sdk`).
pub const SDK_JS: &str = include_str!("../../static/sdk/superinsights.js");

const CACHE_DEV: &str = "no-store";
const CACHE_PLAIN: &str = "public, max-age=86400";
const CACHE_VERSIONED: &str = "public, max-age=31536000, immutable";

pub fn router() -> Router<AppState> {
    Router::new().route("/sdk/superinsights.js", get(sdk_script))
}

/// The SDK's content hash (16 hex digits): its ETag and the `v` of its versioned URL.
pub fn sdk_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| hex::encode(&Sha256::digest(SDK_JS.as_bytes())[..8]))
}

/// The versioned path to put in pages: `/sdk/superinsights.js?v=<hash>`.
pub fn sdk_versioned_path() -> String {
    format!("/sdk/superinsights.js?v={}", sdk_version())
}

/// True when `If-None-Match` names our ETag (weak or strong) or is `*`.
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

async fn sdk_script(State(config): State<Arc<Config>>, uri: Uri, headers: HeaderMap) -> Response {
    let etag = format!("\"{}\"", sdk_version());
    let versioned = uri.query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "v" && v == sdk_version())
    });
    // A stale `?v=` gets today's SDK with the short lifetime, never pinned for a year.
    let cache_control = match (config.production, versioned) {
        (false, _) => CACHE_DEV,
        (true, false) => CACHE_PLAIN,
        (true, true) => CACHE_VERSIONED,
    };
    let mut response = if etag_matches(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
            )],
            SDK_JS,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io::Write, path::Path};

    /// The size budget for the whole minified SDK, gzip -9 (SuperInsights 1.x: 8.6 KB).
    const BUDGET_GZIP_BYTES: usize = 3072;

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn committed_bundle_is_fresh_and_within_budget() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("static/sdk");
        let source = std::fs::read(dir.join("superinsights.src.js")).unwrap();
        let build: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("superinsights.build.json")).unwrap())
                .unwrap();
        assert_eq!(
            build["source_sha256"].as_str(),
            Some(sha256_hex(&source).as_str()),
            "static/sdk/superinsights.js is stale: run scripts/build-sdk after editing superinsights.src.js"
        );
        assert_eq!(
            build["bundle_sha256"].as_str(),
            Some(sha256_hex(SDK_JS.as_bytes()).as_str()),
            "static/sdk/superinsights.js was changed by hand: edit superinsights.src.js and run scripts/build-sdk"
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(SDK_JS.as_bytes()).unwrap();
        let gzip_bytes = gz.finish().unwrap().len();
        assert!(
            gzip_bytes <= BUDGET_GZIP_BYTES,
            "the SDK is {gzip_bytes} bytes gzipped, over its {BUDGET_GZIP_BYTES}-byte budget"
        );
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let tag = "\"abc\"";
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(v));
            h
        };
        assert!(etag_matches(&with("\"abc\""), tag));
        assert!(etag_matches(&with("\"x\", W/\"abc\""), tag));
        assert!(etag_matches(&with("*"), tag));
        assert!(!etag_matches(&with("\"abd\""), tag));
        assert!(!etag_matches(&HeaderMap::new(), tag));
    }
}
