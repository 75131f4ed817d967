//! Request enrichment: the client IP (socket address, or `X-Forwarded-For` only behind a trusted
//! proxy), the country (CDN header behind a trusted proxy, else an optional MaxMind-format file),
//! and User-Agent facts (parsed once per distinct UA string, cached).

use super::parse::RequestFacts;
use crate::domain::{
    model::Enrichment,
    timestamp::now_ms,
    useragent::{self, UserAgentInfo},
};
use axum::http::HeaderMap;
use std::{collections::HashMap, net::IpAddr, path::Path, sync::Mutex};

/// Headers CDNs and edge proxies set with the visitor's ISO country code.
const COUNTRY_HEADERS: &[&str] = &[
    "cf-ipcountry",
    "x-vercel-ip-country",
    "cloudfront-viewer-country",
    "x-country-code",
];

/// Distinct User-Agent strings kept parsed; the cache is cleared when full.
const UA_CACHE_LIMIT: usize = 2048;

pub struct Enricher {
    /// Proxies trusted to append to `X-Forwarded-For` (0: none).
    trust_proxy: usize,
    country_lookup: bool,
    geoip: Option<maxminddb::Reader<Vec<u8>>>,
    ua_cache: Mutex<HashMap<String, UserAgentInfo>>,
}

impl Enricher {
    /// `geoip_db` is a MaxMind-format (`.mmdb`) country or city database; it is read once, never downloaded.
    pub fn new(
        trust_proxy: usize,
        country_lookup: bool,
        geoip_db: Option<&Path>,
    ) -> Result<Self, String> {
        let geoip = match geoip_db.filter(|_| country_lookup) {
            Some(path) => Some(
                maxminddb::Reader::open_readfile(path)
                    .map_err(|e| format!("GEOIP_DB_PATH {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Self {
            trust_proxy,
            country_lookup,
            geoip,
            ua_cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn has_geoip(&self) -> bool {
        self.geoip.is_some()
    }

    /// The client's address: the socket peer or, behind `n` trusted proxies, the `n`-th
    /// `X-Forwarded-For` entry from the right (the address the outermost trusted proxy saw);
    /// entries further left are client-supplied and never trusted. IPv4-mapped IPv6 becomes IPv4.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.trust_proxy == 0 {
            return peer.to_canonical();
        }
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        // Fewer entries than trusted proxies: the request did not come through them all, so
        // nothing in the header can be trusted; use the socket peer.
        let chosen = entries
            .len()
            .checked_sub(self.trust_proxy)
            .map(|i| entries[i]);
        chosen
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .unwrap_or(peer)
            .to_canonical()
    }

    /// ISO-3166 alpha-2 country of the client, when known.
    pub fn country(&self, ip: IpAddr, headers: &HeaderMap) -> Option<String> {
        if !self.country_lookup {
            return None;
        }
        if self.trust_proxy > 0 {
            let from_header = COUNTRY_HEADERS
                .iter()
                .filter_map(|h| headers.get(*h)?.to_str().ok())
                .map(|v| v.trim().to_ascii_uppercase())
                .find(|v| {
                    v.len() == 2
                        && v.bytes().all(|b| b.is_ascii_uppercase())
                        && v != "XX"
                        && v != "T1"
                });
            if from_header.is_some() {
                return from_header;
            }
        }
        let reader = self.geoip.as_ref()?;
        let found = reader
            .lookup(ip)
            .ok()?
            .decode::<maxminddb::geoip2::Country>()
            .ok()??;
        found
            .country
            .iso_code
            .or(found.registered_country.iso_code)
            .map(str::to_string)
    }

    /// Parsed User-Agent facts, cached by string.
    pub fn user_agent(&self, ua: &str) -> UserAgentInfo {
        if let Some(hit) = self.ua_cache.lock().expect("ua cache").get(ua) {
            return hit.clone();
        }
        let info = useragent::parse(ua);
        let mut cache = self.ua_cache.lock().expect("ua cache");
        if cache.len() >= UA_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(ua.to_string(), info.clone());
        info
    }

    /// Everything the server adds to the items of one request.
    pub fn facts(&self, peer: IpAddr, headers: &HeaderMap) -> RequestFacts {
        let ip = self.client_ip(peer, headers);
        let ua = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let user_agent = self.user_agent(ua);
        RequestFacts {
            enrichment: Enrichment {
                ip: Some(ip.to_string()),
                country: self.country(ip, headers),
                is_bot: user_agent.is_bot,
                timestamp_replaced: false,
            },
            user_agent,
            now_ms: now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_proxy_is_trusted() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7")]);
        let untrusted = Enricher::new(0, true, None).unwrap();
        assert_eq!(untrusted.client_ip(peer, &h), peer);
        let trusted = Enricher::new(1, true, None).unwrap();
        assert_eq!(
            trusted.client_ip(peer, &h).to_string(),
            "198.51.100.7",
            "the proxy-appended entry, not the spoofable first"
        );
        assert_eq!(
            trusted.client_ip(peer, &headers(&[("x-forwarded-for", "garbage")])),
            peer
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_canonical() {
        let e = Enricher::new(0, true, None).unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.5".parse().unwrap();
        assert_eq!(
            e.client_ip(mapped, &HeaderMap::new()).to_string(),
            "192.0.2.5"
        );
    }

    #[test]
    fn cdn_country_headers_only_behind_a_trusted_proxy() {
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        let h = headers(&[("cf-ipcountry", "de")]);
        assert_eq!(
            Enricher::new(1, true, None)
                .unwrap()
                .country(ip, &h)
                .as_deref(),
            Some("DE")
        );
        assert_eq!(Enricher::new(0, true, None).unwrap().country(ip, &h), None);
        assert_eq!(
            Enricher::new(1, false, None).unwrap().country(ip, &h),
            None,
            "COUNTRY_LOOKUP_ENABLED=false"
        );
        assert_eq!(
            Enricher::new(1, true, None)
                .unwrap()
                .country(ip, &headers(&[("cf-ipcountry", "XX")])),
            None
        );
    }

    /// Writes a minimal IPv4 MaxMind DB holding one network, mapped to `{"country":{"iso_code":iso}}`.
    fn write_mmdb(path: &Path, network: [u8; 4], prefix: usize, iso: &str) {
        let node_count = prefix as u32;
        let data_pointer = node_count + 16; // data section offset 0
        let mut out = Vec::new();
        for depth in 0..prefix {
            let bit = (network[depth / 8] >> (7 - depth % 8)) & 1;
            let next = if depth + 1 == prefix {
                data_pointer
            } else {
                depth as u32 + 1
            };
            let (left, right) = if bit == 0 {
                (next, node_count)
            } else {
                (node_count, next)
            };
            out.extend_from_slice(&left.to_be_bytes()[1..]);
            out.extend_from_slice(&right.to_be_bytes()[1..]);
        }
        out.extend_from_slice(&[0u8; 16]);
        let string = |out: &mut Vec<u8>, s: &str| {
            out.push(0x40 | s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        };
        let uint16 = |out: &mut Vec<u8>, v: u16| {
            out.push(0xA0 | 2);
            out.extend_from_slice(&v.to_be_bytes());
        };
        out.push(0xE1);
        string(&mut out, "country");
        out.push(0xE1);
        string(&mut out, "iso_code");
        string(&mut out, iso);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        out.push(0xE0 | 9);
        string(&mut out, "node_count");
        out.push(0xC0 | 4);
        out.extend_from_slice(&node_count.to_be_bytes());
        string(&mut out, "record_size");
        uint16(&mut out, 24);
        string(&mut out, "ip_version");
        uint16(&mut out, 4);
        string(&mut out, "database_type");
        string(&mut out, "Test-Country");
        string(&mut out, "languages");
        out.extend_from_slice(&[0x01, 0x04]); // array (extended type 11) of one
        string(&mut out, "en");
        string(&mut out, "binary_format_major_version");
        uint16(&mut out, 2);
        string(&mut out, "binary_format_minor_version");
        uint16(&mut out, 0);
        string(&mut out, "build_epoch");
        out.extend_from_slice(&[0x01, 0x02, 0x01]); // uint64 (extended type 9), one byte
        string(&mut out, "description");
        out.push(0xE0);
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn countries_come_from_a_local_maxmind_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("country.mmdb");
        write_mmdb(&path, [203, 0, 113, 0], 24, "FR");
        let e = Enricher::new(0, true, Some(&path)).unwrap();
        assert!(e.has_geoip());
        let none = HeaderMap::new();
        assert_eq!(
            e.country("203.0.113.77".parse().unwrap(), &none).as_deref(),
            Some("FR")
        );
        assert_eq!(e.country("198.51.100.1".parse().unwrap(), &none), None);
        let facts = e.facts("203.0.113.5".parse().unwrap(), &none);
        assert_eq!(facts.enrichment.country.as_deref(), Some("FR"));
        assert_eq!(facts.enrichment.ip.as_deref(), Some("203.0.113.5"));
    }

    #[test]
    fn a_missing_geoip_file_is_a_clear_error() {
        let err = Enricher::new(0, true, Some(Path::new("/nonexistent/x.mmdb")))
            .err()
            .unwrap();
        assert!(err.contains("GEOIP_DB_PATH"), "{err}");
    }
}
