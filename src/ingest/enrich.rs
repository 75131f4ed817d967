//! Request enrichment: the client IP (socket address, or `X-Forwarded-For` only behind a trusted
//! proxy), the country (CDN header behind a trusted proxy, else a MaxMind-format file: the one
//! `GEOIP_DB_PATH` names, or the bundled `geo-whois-asn-country.mmdb`, see
//! [`bundled_country_db`]), User-Agent facts (parsed once per distinct UA string, cached), and
//! the server's time of the request (on the injected clock; items without a readable timestamp
//! take it). Never downloads anything.

use super::parse::RequestFacts;
use crate::domain::{
    clock::{SharedClock, SystemClock},
    model::Enrichment,
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

// Where the bundled country database is looked for is configuration (`GEOIP_DB_PATH` unset).
pub use crate::config::country_db::{
    BUNDLED_DB_FILE, IMAGE_DB_DIR, NPM_DB_PATH, bundled_country_db,
};

/// False for addresses that belong to no country: loopback, private, shared, link-local,
/// multicast and unspecified ranges (the bundled database maps some of them). Documentation
/// ranges are left to the database, so tests can use them with a generated file.
fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || a >= 240
                || a == 0)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The fields a country database may carry: `country_code` (ip-location-db), or GeoIP2's
/// `country` / `registered_country` with an `iso_code` (MaxMind GeoLite2/GeoIP2 Country or City).
#[derive(serde::Deserialize)]
struct CountryRecord {
    #[serde(default)]
    country_code: Option<String>,
    #[serde(default)]
    country: Option<IsoCode>,
    #[serde(default)]
    registered_country: Option<IsoCode>,
}

#[derive(serde::Deserialize)]
struct IsoCode {
    #[serde(default)]
    iso_code: Option<String>,
}

pub struct Enricher {
    /// Proxies trusted to append to `X-Forwarded-For` (0: none).
    trust_proxy: usize,
    country_lookup: bool,
    geoip: Option<maxminddb::Reader<Vec<u8>>>,
    ua_cache: Mutex<HashMap<String, UserAgentInfo>>,
    /// The server's time of a request.
    clock: SharedClock,
}

impl Enricher {
    /// `geoip_db` is a MaxMind-format (`.mmdb`) country or city database; it is read once, never
    /// downloaded.
    pub fn new(
        trust_proxy: usize,
        country_lookup: bool,
        geoip_db: Option<&Path>,
    ) -> Result<Self, String> {
        let geoip = match geoip_db.filter(|_| country_lookup) {
            Some(path) => {
                let reader = maxminddb::Reader::open_readfile(path)
                    .map_err(|e| format!("GEOIP_DB_PATH {}: {e}", path.display()))?;
                tracing::info!(
                    path = %path.display(),
                    database = %reader.metadata().database_type,
                    built = reader.metadata().build_epoch,
                    "country database"
                );
                Some(reader)
            }
            None => None,
        };
        Ok(Self {
            trust_proxy,
            country_lookup,
            geoip,
            ua_cache: Mutex::new(HashMap::new()),
            clock: SystemClock::shared(),
        })
    }

    /// The same enricher with the server's time from `clock` (the system clock by default).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The server's time now (epoch ms): what a request's items are stamped with when they
    /// carry no readable timestamp.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
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
        let reader = self.geoip.as_ref().filter(|_| is_public(ip))?;
        let found = reader.lookup(ip).ok()?.decode::<CountryRecord>().ok()??;
        let iso = |c: Option<IsoCode>| c.and_then(|c| c.iso_code);
        found
            .country_code
            .or_else(|| iso(found.country))
            .or_else(|| iso(found.registered_country))
            .map(|code| code.trim().to_ascii_uppercase())
            .filter(|code| code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()))
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
            now_ms: self.now_ms(),
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

    /// The bundled database (`npm ci` installs it) answers for real IPv4 and IPv6 addresses,
    /// and loopback or documentation addresses stay without a country.
    #[test]
    fn the_bundled_database_knows_real_ipv4_and_ipv6_addresses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(NPM_DB_PATH);
        assert!(
            path.is_file(),
            "{} is missing: run `npm ci` (package.json brings the country database)",
            path.display()
        );
        let e = Enricher::new(0, true, Some(&path)).unwrap();
        let none = HeaderMap::new();
        let country = |ip: &str| e.country(ip.parse().unwrap(), &none);
        for (ip, iso) in [
            ("193.0.6.139", "NL"),
            ("2001:67c:2e8:22::c100:68b", "NL"),
            ("81.2.69.160", "GB"),
            ("2a01:4f8::1", "DE"),
            ("2001:41d0::1", "FR"),
        ] {
            assert_eq!(country(ip).as_deref(), Some(iso), "{ip}");
        }
        for unrouted in ["127.0.0.1", "10.1.2.3", "::1", "fd00::1", "fe80::1"] {
            assert_eq!(country(unrouted), None, "{unrouted}");
        }
    }

    #[test]
    fn the_bundled_database_is_found_in_data_dir_first_then_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let in_data_dir = dir.path().join(BUNDLED_DB_FILE);
        std::fs::write(&in_data_dir, b"refreshed copy").unwrap();
        assert_eq!(bundled_country_db(dir.path()), Some(in_data_dir));
        let empty = tempfile::tempdir().unwrap();
        if Path::new(NPM_DB_PATH).is_file()
            && !Path::new(IMAGE_DB_DIR).join(BUNDLED_DB_FILE).is_file()
        {
            assert_eq!(
                bundled_country_db(empty.path()),
                Some(std::path::PathBuf::from(NPM_DB_PATH))
            );
        }
    }

    #[test]
    fn a_missing_geoip_file_is_a_clear_error() {
        let err = Enricher::new(0, true, Some(Path::new("/nonexistent/x.mmdb")))
            .err()
            .unwrap();
        assert!(err.contains("GEOIP_DB_PATH"), "{err}");
    }
}
