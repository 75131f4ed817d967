//! Error fingerprints, computed exactly as SuperInsights 1.x does so that groups stay stable
//! across the migration: lowercase hex SHA-256 of `message` + the first 100 UTF-16 code units of
//! the stack trace (JavaScript's `substring(0, 100)`).

use sha2::{Digest, Sha256};

/// Fingerprint of a (trimmed) message and an optional stack trace.
pub fn error_fingerprint(message: &str, stack: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(message.as_bytes());
    if let Some(stack) = stack {
        hasher.update(js_prefix_utf16(stack, 100).as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The first `units` UTF-16 code units of `s`, as JavaScript would cut it. A surrogate pair cut in
/// half leaves a lone surrogate, which Node encodes as U+FFFD when hashing.
fn js_prefix_utf16(s: &str, units: usize) -> std::borrow::Cow<'_, str> {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let width = c.len_utf16();
        if used + width > units {
            if used < units {
                return format!("{}\u{FFFD}", &s[..i]).into();
            }
            return s[..i].into();
        }
        used += width;
    }
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_node_sha256_of_message_plus_stack_prefix() {
        // Node: crypto.createHash('sha256').update('boom' + 'at x').digest('hex')
        let expected = hex::encode(Sha256::digest(b"boomat x"));
        assert_eq!(error_fingerprint("boom", Some("at x")), expected);
        assert_eq!(
            error_fingerprint("boom", None),
            hex::encode(Sha256::digest(b"boom"))
        );
    }

    #[test]
    fn only_first_100_code_units_of_stack_count() {
        let long_a = "a".repeat(150);
        let long_b = format!("{}{}", "a".repeat(100), "b".repeat(50));
        assert_eq!(
            error_fingerprint("m", Some(&long_a)),
            error_fingerprint("m", Some(&long_b))
        );
    }

    #[test]
    fn astral_characters_count_as_two_units() {
        let s = format!("{}😀tail", "a".repeat(99));
        assert_eq!(
            js_prefix_utf16(&s, 100),
            format!("{}\u{FFFD}", "a".repeat(99))
        );
        let s = format!("{}😀tail", "a".repeat(98));
        assert_eq!(js_prefix_utf16(&s, 100), format!("{}😀", "a".repeat(98)));
    }
}
