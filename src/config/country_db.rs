//! Where the IP-to-country database comes from when `GEOIP_DB_PATH` is unset: the bundled
//! file's name and the places it is looked for. Reading it is `ingest::enrich`'s.

use std::path::{Path, PathBuf};

/// File name of the bundled IP-to-country database (npm package
/// `@ip-location-db/geo-whois-asn-country-mmdb`, IPv4 and IPv6, redistributable).
pub const BUNDLED_DB_FILE: &str = "geo-whois-asn-country.mmdb";

/// Where the container image puts the bundled database (see the Dockerfile).
pub const IMAGE_DB_DIR: &str = "/usr/share/superinsights";

/// Where `npm ci` puts it, relative to a checkout.
pub const NPM_DB_PATH: &str =
    "node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb";

/// The country database used when `GEOIP_DB_PATH` is unset: the first file found of
/// `<DATA_DIR>/geo-whois-asn-country.mmdb` (a refreshed copy), the container image's
/// `/usr/share/superinsights/geo-whois-asn-country.mmdb`, and `node_modules/…` under the working
/// directory or a parent of the executable's directory (a checkout after `npm ci`).
pub fn bundled_country_db(data_dir: &Path) -> Option<PathBuf> {
    let mut candidates = vec![
        data_dir.join(BUNDLED_DB_FILE),
        Path::new(IMAGE_DB_DIR).join(BUNDLED_DB_FILE),
        PathBuf::from(NPM_DB_PATH),
    ];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|d| d.join(NPM_DB_PATH)));
    }
    candidates.into_iter().find(|p| p.is_file())
}
