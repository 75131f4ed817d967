//! Error signatures: how the errors page groups occurrences the way a developer reads them.
//! SuperInsights 1.x's fingerprint (`domain::fingerprint`) is stored unchanged, but it hashes
//! the raw message, so `Item 17 not found` and `Item 18 not found` are two groups. The signature
//! is computed from the error type, the message with its variable parts replaced by
//! placeholders (URLs and paths keep their shape with ids replaced, then UUIDs, memory
//! addresses, hex ids, quoted strings and numbers), and the top stack frame's function and file
//! without line and column. Pure; the analytics engine computes it once per scanned row.

use regex::Regex;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Longest normalised message kept (characters); longer messages are cut before hashing.
pub const PATTERN_MAX_CHARS: usize = 300;

/// One error's signature: the key groups are stored under and what it was made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// 16 lowercase hex digits (the first 8 bytes of a SHA-256 of the parts below).
    pub key: String,
    /// The message with its variable parts replaced (`Item <n> not found`).
    pub pattern: String,
    /// The top stack frame as `function (file)` without line and column, when a stack has one.
    pub frame: Option<String>,
}

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b[a-z][a-z0-9+.-]*://[^\s'"`<>()\[\]{},]+"#).unwrap());
static PATH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?:^|[\s(\[=])(/[^\s'"`<>()\[\]{},]+)"#).unwrap());
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b").unwrap()
});
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b0x[0-9a-f]+\b").unwrap());
static HEX_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*\b|\b[0-9a-f]*[a-f][0-9a-f]*[0-9][0-9a-f]*\b",
    )
    .unwrap()
});
static QUOTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""[^"\n]{0,200}"|(?:^|[^\p{L}\p{N}])'[^'\n]{0,200}'|`[^`\n]{0,200}`"#).unwrap()
});
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[0-9]+(?:[.,][0-9]+)*").unwrap());
static SPACES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").unwrap());
/// `at fn (file:1:2)`, `at file:1:2` (V8) and `fn@file:1:2` (SpiderMonkey, JavaScriptCore).
static V8_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*at\s+(?:(.+?)\s+\()?(.+?)(?::\d+)?(?::\d+)?\)?\s*$").unwrap()
});
static GECKO_FRAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*([^@\s]*)@(.+?)(?::\d+)?(?::\d+)?\s*$").unwrap());

/// A URL's scheme, host and path with id-like segments replaced; query and fragment dropped.
fn url_shape(url: &str) -> String {
    let cut = url.find(['?', '#']).map_or(url, |i| &url[..i]);
    let (head, path) = match cut.find("://") {
        Some(i) => match cut[i + 3..].find('/') {
            Some(j) => cut.split_at(i + 3 + j),
            None => (cut, ""),
        },
        None => ("", cut),
    };
    format!("{head}{}", path_shape(path))
}

/// A path with every segment holding a digit replaced by `<id>`.
fn path_shape(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.bytes().any(|b| b.is_ascii_digit()) {
                "<id>"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The message with its variable parts replaced by placeholders, whitespace collapsed, cut at
/// [`PATTERN_MAX_CHARS`].
pub fn normalise_message(message: &str) -> String {
    let s = URL.replace_all(message, |c: &regex::Captures| url_shape(&c[0]));
    let s = PATH.replace_all(&s, |c: &regex::Captures| {
        let whole = &c[0];
        let prefix = &whole[..whole.len() - c[1].len()];
        format!("{prefix}{}", url_shape(&c[1]))
    });
    let s = QUOTED.replace_all(&s, |c: &regex::Captures| {
        let whole = &c[0];
        let q = whole.find(['"', '\'', '`']).unwrap_or(0);
        let quote = &whole[q..q + 1];
        format!("{}{quote}<str>{quote}", &whole[..q])
    });
    let s = UUID.replace_all(&s, "<uuid>");
    let s = ADDRESS.replace_all(&s, "<addr>");
    let s = HEX_ID.replace_all(&s, |c: &regex::Captures| {
        if c[0].len() >= 6 {
            "<hex>".to_string()
        } else {
            c[0].to_string()
        }
    });
    let s = NUMBER.replace_all(&s, "<n>");
    let s = SPACES.replace_all(s.trim(), " ");
    s.chars().take(PATTERN_MAX_CHARS).collect()
}

/// The first stack frame as `function (file)`: line and column dropped, the file without its
/// origin, query and fragment, and its variable parts (bundle hashes, chunk numbers) replaced
/// as in messages. `None` when no line of the stack looks like a frame.
pub fn top_frame(stack: &str) -> Option<String> {
    for line in stack.lines().take(20) {
        let caps = V8_FRAME
            .captures(line)
            .or_else(|| GECKO_FRAME.captures(line));
        let Some(caps) = caps else { continue };
        let function = caps.get(1).map_or("", |m| m.as_str()).trim();
        let location = caps.get(2).map_or("", |m| m.as_str()).trim();
        if location.is_empty() {
            continue;
        }
        let location = location
            .find(['?', '#'])
            .map_or(location, |i| &location[..i]);
        let file = match location.find("://") {
            Some(i) => location[i + 3..]
                .find('/')
                .map_or("/", |j| &location[i + 3 + j..]),
            None => location,
        };
        let file = normalise_file(file);
        let function = if function.is_empty() {
            "<anonymous>"
        } else {
            function
        };
        return Some(format!("{function} ({file})"));
    }
    None
}

/// A file name with bundle hashes and numbers replaced (`/assets/main.3f2a9c1b.js` →
/// `/assets/main.<hex>.js`).
fn normalise_file(file: &str) -> String {
    let s = HEX_ID.replace_all(file, |c: &regex::Captures| {
        if c[0].len() >= 6 {
            "<hex>".to_string()
        } else {
            c[0].to_string()
        }
    });
    NUMBER.replace_all(&s, "<n>").into_owned()
}

/// The signature of one error: its type, normalised message and top frame.
pub fn signature(error_type: Option<&str>, message: &str, stack: Option<&str>) -> Signature {
    let pattern = normalise_message(message);
    let frame = stack.and_then(top_frame);
    let error_type = error_type.unwrap_or("").trim();
    let mut h = Sha256::new();
    for part in [error_type, &pattern, frame.as_deref().unwrap_or("")] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    Signature {
        key: hex::encode(&h.finalize()[..8]),
        pattern,
        frame,
    }
}

/// Whether `key` has the shape of a signature key (16 lowercase hex digits).
pub fn is_signature_key(key: &str) -> bool {
    key.len() == 16 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_ids_urls_quotes_and_addresses_are_replaced() {
        assert_eq!(normalise_message("Item 17 not found"), "Item <n> not found");
        assert_eq!(
            normalise_message("Failed to fetch https://api.example.com/v2/orders/98123?x=1#a"),
            "Failed to fetch https://api.example.com/<id>/orders/<id>"
        );
        assert_eq!(
            normalise_message("GET /users/42/avatar failed"),
            "GET /users/<id>/avatar failed"
        );
        assert_eq!(
            normalise_message("order 3f2b8c1e-0a4d-4c8e-9b1a-2d3e4f5a6b7c missing"),
            "order <uuid> missing"
        );
        assert_eq!(
            normalise_message("segfault at 0x7ffee4b2a9c0"),
            "segfault at <addr>"
        );
        assert_eq!(
            normalise_message("commit 9fceb02d0ae5 lost"),
            "commit <hex> lost"
        );
        assert_eq!(
            normalise_message("Cannot read properties of undefined (reading 'name')"),
            "Cannot read properties of undefined (reading '<str>')"
        );
        assert_eq!(
            normalise_message(r#"Unexpected token "<" in JSON at position 0"#),
            r#"Unexpected token "<str>" in JSON at position <n>"#
        );
        assert_eq!(normalise_message("  can't   stop\n now "), "can't stop now");
        assert_eq!(
            normalise_message("decade cafe"),
            "decade cafe",
            "words stay"
        );
    }

    #[test]
    fn top_frames_lose_line_column_origin_and_bundle_hash() {
        let v8 = "TypeError: x is undefined\n    at render (https://shop.example/assets/app.3f9a2c1b.js:10:42)\n    at main (https://shop.example/assets/app.3f9a2c1b.js:99:1)";
        assert_eq!(
            top_frame(v8).as_deref(),
            Some("render (/assets/app.<hex>.js)")
        );
        let other_line = v8.replace(":10:42", ":11:7");
        assert_eq!(top_frame(&other_line), top_frame(v8));
        assert_eq!(
            top_frame("Error\n    at https://x.example/chunk-12.js:1:2").as_deref(),
            Some("<anonymous> (/chunk-<n>.js)")
        );
        assert_eq!(
            top_frame("load@https://x.example/app.js?v=3:5:9\n@debugger eval code:1:1").as_deref(),
            Some("load (/app.js)")
        );
        assert_eq!(top_frame("no frames here"), None);
    }

    #[test]
    fn four_messages_with_varying_parts_make_four_signatures() {
        let stack =
            |line: u32| format!("Error\n    at load (https://shop.example/assets/app.js:{line}:3)");
        let mut keys = std::collections::HashSet::new();
        let mut n = 0;
        for i in 0..40u32 {
            let messages = [
                format!("Item {i} not found"),
                format!(
                    "Failed to fetch https://api.example.com/orders/{}?t={}",
                    1000 + i,
                    i * 7
                ),
                format!(
                    "Session {:08x}-1234-4abc-8def-{:012x} expired",
                    i * 7919,
                    u64::from(i) * 104_729
                ),
                format!("Cannot read properties of undefined (reading 'field{i}')"),
            ];
            for (k, m) in messages.iter().enumerate() {
                let ty = if k == 3 { "TypeError" } else { "Error" };
                keys.insert(signature(Some(ty), m, Some(&stack(i % 5 + 1))).key);
                n += 1;
            }
        }
        assert_eq!(n, 160);
        assert_eq!(keys.len(), 4, "one signature per message shape");
    }

    #[test]
    fn type_and_frame_separate_signatures() {
        let a = signature(Some("TypeError"), "boom", None);
        assert_ne!(a.key, signature(Some("RangeError"), "boom", None).key);
        assert_ne!(
            a.key,
            signature(Some("TypeError"), "boom", Some("    at f (/a.js:1:1)")).key
        );
        assert!(is_signature_key(&a.key));
        assert!(!is_signature_key("XYZ"));
        assert_eq!(a.pattern, "boom");
    }
}
