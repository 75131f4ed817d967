//! Where a browser may be sent after an action (`next`, `redirectTo`): only a path on this site.
//! One parser for every redirect that takes user input; anything it does not admit falls back
//! to a fixed default. Pure: no IO, no HTTP types.
//!
//! Browsers are lenient in ways a plain prefix check misses: they drop tabs and newlines anywhere
//! in a URL (`/\t/evil` becomes `//evil`), treat `\` like `/`, strip leading control characters
//! and spaces, and resolve dot segments. So a target is admitted only when it begins with exactly
//! one `/`, has no control character, whitespace or backslash and no `.` or `..` segment, and
//! still begins with one `/` and has no control character, backslash or dot segment once
//! percent-decoded (in case anything downstream decodes it). What is admitted is returned with
//! its non-ASCII characters percent-encoded, so it is always a valid `Location` header value.

/// Longest target admitted, in bytes (longer ones fall back).
pub const MAX_LEN: usize = 2048;

/// The target as a same-origin path (with any query and fragment), normalised; `None` when it
/// is anything else: empty, absolute, scheme-relative, or a trick a browser would resolve to
/// another site.
pub fn local_path(target: &str) -> Option<String> {
    if target.is_empty() || target.len() > MAX_LEN || !is_plain_local(target) {
        return None;
    }
    // Percent-decoding must not reveal what the plain text hides (`/%2F/evil`, `/%09/evil`,
    // `/%2e%2e/`); decode until stable, a few rounds at most.
    let mut decoded = target.to_string();
    for _ in 0..3 {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        if !is_local_when_decoded(&next) {
            return None;
        }
        decoded = next;
    }
    Some(encode_non_ascii(target))
}

/// [`local_path`] of the target when there is one, else `fallback`.
pub fn redirect_target(target: Option<&str>, fallback: &str) -> String {
    target
        .and_then(local_path)
        .unwrap_or_else(|| fallback.to_string())
}

/// The checks the target as given must pass: exactly one leading `/`, nothing a browser would
/// drop or reinterpret (control characters, whitespace, invisible formatting, backslashes), no dot
/// segments.
fn is_plain_local(s: &str) -> bool {
    starts_with_one_slash(s)
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\' || is_invisible_format(c))
        && no_dot_segments(s)
}

/// The checks the target must still pass once percent-decoded (`/%2F/evil`, `/%09/evil`,
/// `/%2e%2e/`). Encoded spaces stay encoded in a browser, so decoded whitespace is fine.
fn is_local_when_decoded(s: &str) -> bool {
    starts_with_one_slash(s)
        && !s.chars().any(|c| c.is_control() || c == '\\')
        && no_dot_segments(s)
}

fn starts_with_one_slash(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('/') && !matches!(chars.next(), Some('/' | '\\'))
}

/// Zero-width and direction characters some browsers ignore in URLs.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

fn no_dot_segments(s: &str) -> bool {
    let path = s.split(['?', '#']).next().unwrap_or("");
    !path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// `%XX` sequences decoded as bytes (invalid UTF-8 becomes U+FFFD); a malformed `%` stays.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Non-ASCII characters as `%XX` of their UTF-8 bytes; ASCII kept as is.
fn encode_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FALLBACK: &str = "/projects";

    #[test]
    fn paths_on_this_site_are_kept() {
        for ok in [
            "/",
            "/projects/1",
            "/projects/abc/dashboard?timeframe=7d",
            "/invite/accept?token=ab12",
            "/p/x#top",
            "/a%20b",
            "/search?q=a%2Fb",
            "/a/.well-known",
            "/a..b/c.",
        ] {
            assert_eq!(redirect_target(Some(ok), FALLBACK), ok, "{ok:?}");
        }
    }

    #[test]
    fn non_ascii_is_percent_encoded() {
        assert_eq!(
            local_path("/projekte/ä").as_deref(),
            Some("/projekte/%C3%A4")
        );
    }

    #[test]
    fn hostile_targets_fall_back() {
        let table: &[&str] = &[
            "",
            "projects",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "\t//evil.example",
            " /x",
            "/x ",
            "/x y",
            "/x\r\nSet-Cookie: a=b",
            "/x\u{0b}",
            "/x\u{0c}",
            "/x\u{00}",
            "/x\u{7f}",
            "/x\u{85}",
            "/x\u{a0}",
            "/\u{3000}/evil.example",
            "/\u{200b}/evil.example",
            "/\u{feff}/evil.example",
            "https://evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "/%2F/evil.example",
            "/%2f/evil.example",
            "/%5C/evil.example",
            "/%5cevil.example",
            "%2F%2Fevil.example",
            "/%09/evil.example",
            "/%0d%0aSet-Cookie:%20a=b",
            "/%00",
            "/%7f",
            "/%252F/evil.example",
            "/%25252F/evil.example",
            "/.//evil.example",
            "/./x",
            "/../x",
            "/a/../../evil",
            "/%2e%2e/x",
            "/%2E/%2Fevil.example",
            "/x/..?q",
        ];
        for evil in table {
            assert_eq!(redirect_target(Some(evil), FALLBACK), FALLBACK, "{evil:?}");
        }
        assert_eq!(redirect_target(None, FALLBACK), FALLBACK);
        let long = format!("/{}", "a".repeat(MAX_LEN));
        assert_eq!(redirect_target(Some(&long), FALLBACK), FALLBACK);
    }

    #[test]
    fn whatever_is_admitted_is_a_valid_location_header() {
        let probes = ["/ä?x=ö#ü", "/a%ZZ", "/%", "/a?b=%2", "/\u{1f600}"];
        for p in probes {
            let out = redirect_target(Some(p), FALLBACK);
            assert!(
                out.bytes().all(|b| b.is_ascii_graphic()),
                "{p:?} gave {out:?}"
            );
            assert!(out.starts_with('/') && !out.starts_with("//"), "{out}");
        }
    }
}
