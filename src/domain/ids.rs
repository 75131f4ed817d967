//! Identifiers: 24-hex ObjectId-shaped ids (so a SuperInsights 1.x MongoDB database keeps its ids)
//! and the `pk_`/`sk_` API keys.

use rand::RngCore;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A 12-byte id laid out like a MongoDB ObjectId: 4 bytes of seconds, 5 random bytes per process,
/// 3 bytes of a counter. Unique across processes without coordination.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(pub [u8; 12]);

fn process_unique() -> &'static [u8; 5] {
    static UNIQUE: OnceLock<[u8; 5]> = OnceLock::new();
    UNIQUE.get_or_init(|| {
        let mut b = [0u8; 5];
        rand::rng().fill_bytes(&mut b);
        b
    })
}

static COUNTER: OnceLock<AtomicU32> = OnceLock::new();

impl DocId {
    pub fn new() -> Self {
        let secs = (time::OffsetDateTime::now_utc().unix_timestamp() as u32).to_be_bytes();
        let counter = COUNTER
            .get_or_init(|| AtomicU32::new(rand::rng().next_u32()))
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&secs);
        b[4..9].copy_from_slice(process_unique());
        b[9..].copy_from_slice(&counter[1..]);
        Self(b)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 24 hex characters; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut b = [0u8; 12];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(Self(b))
    }
}

impl Default for DocId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Display for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl serde::Serialize for DocId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for DocId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DocId::parse(&s).ok_or_else(|| serde::de::Error::custom("expected 24 hex characters"))
    }
}

/// A fresh API key: `prefix` + 64 hex chars (32 random bytes), as SuperInsights 1.x makes them.
pub fn api_key(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// A random URL-safe token of `bytes` random bytes, hex encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        let a = DocId::new();
        let b = DocId::new();
        assert_ne!(a, b);
        assert_eq!(DocId::parse(&a.to_hex()), Some(a));
        assert_eq!(a.to_hex().len(), 24);
        assert_eq!(DocId::parse("xyz"), None);
    }

    #[test]
    fn api_keys_have_prefix_and_64_hex() {
        let k = api_key("pk_");
        assert!(k.starts_with("pk_"));
        assert_eq!(k.len(), 67);
        assert!(k[3..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
