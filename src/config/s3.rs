//! The S3-compatible bucket report files may go to (`REPORTS_S3_*`), checked strictly at
//! startup: a value that cannot work is an error naming the variable (exit 78). Unset
//! (`REPORTS_S3_BUCKET` empty): report files stay in the local `REPORTS_DIR`.

use super::{ConfigError, Env, Secret};

/// A usable bucket setup.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `REPORTS_S3_ENDPOINT`: `http(s)://host[:port]` of an S3-compatible server; `None` means
    /// AWS S3 itself (the endpoint follows from the region).
    pub endpoint: Option<String>,
    /// `REPORTS_S3_BUCKET`.
    pub bucket: String,
    /// `REPORTS_S3_REGION` (default `us-east-1`).
    pub region: String,
    /// `REPORTS_S3_ACCESS_KEY_ID` and `REPORTS_S3_SECRET_ACCESS_KEY` (both required).
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// `REPORTS_S3_PATH_STYLE`: `http://host/bucket/key` rather than `http://bucket.host/key`
    /// (default: on with an endpoint, off on AWS).
    pub path_style: bool,
    /// `REPORTS_S3_PREFIX`: a folder inside the bucket the keys go under (`reports/…`), if any.
    pub prefix: Option<String>,
}

/// S3's bucket naming rules: 3–63 of `a-z 0-9 . -`, starting and ending with a letter or digit.
fn valid_bucket(name: &str) -> bool {
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| edge(b) || matches!(b, b'.' | b'-'))
        && name.bytes().next().is_some_and(edge)
        && name.bytes().last().is_some_and(edge)
        && !name.contains("..")
}

/// The bucket settings, `None` when no bucket is configured.
pub fn from_env(env: &Env) -> Result<Option<S3Config>, ConfigError> {
    const OTHERS: [&str; 6] = [
        "REPORTS_S3_ENDPOINT",
        "REPORTS_S3_REGION",
        "REPORTS_S3_ACCESS_KEY_ID",
        "REPORTS_S3_SECRET_ACCESS_KEY",
        "REPORTS_S3_PATH_STYLE",
        "REPORTS_S3_PREFIX",
    ];
    let Some(bucket) = env.get("REPORTS_S3_BUCKET") else {
        if let Some(var) = OTHERS.iter().find(|v| env.get(v).is_some()) {
            return Err(ConfigError::new(
                "REPORTS_S3_BUCKET",
                format!("{var} is set but no bucket is: set REPORTS_S3_BUCKET too, or unset {var}"),
            ));
        }
        return Ok(None);
    };
    if !valid_bucket(bucket) {
        return Err(ConfigError::new(
            "REPORTS_S3_BUCKET",
            "3 to 63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit",
        ));
    }
    let endpoint = match env.get("REPORTS_S3_ENDPOINT") {
        None => None,
        Some(raw) => {
            let url = url::Url::parse(raw).map_err(|e| {
                ConfigError::new("REPORTS_S3_ENDPOINT", format!("not a URL ({e}): {raw:?}"))
            })?;
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
                || url.fragment().is_some()
                || url.path() != "/"
            {
                return Err(ConfigError::new(
                    "REPORTS_S3_ENDPOINT",
                    "must be http(s)://host[:port] with no path, credentials or query",
                ));
            }
            Some(raw.trim_end_matches('/').to_string())
        }
    };
    let region = env.get("REPORTS_S3_REGION").unwrap_or("us-east-1");
    if region.len() > 64
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ConfigError::new(
            "REPORTS_S3_REGION",
            "a region name such as us-east-1 (a-z, 0-9, '-')",
        ));
    }
    let access_key_id = env.get("REPORTS_S3_ACCESS_KEY_ID").ok_or_else(|| {
        ConfigError::new(
            "REPORTS_S3_ACCESS_KEY_ID",
            "required with REPORTS_S3_BUCKET",
        )
    })?;
    if access_key_id.len() > 128 || !access_key_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            "REPORTS_S3_ACCESS_KEY_ID",
            "printable ASCII without spaces, at most 128 characters",
        ));
    }
    let secret = env.get("REPORTS_S3_SECRET_ACCESS_KEY").ok_or_else(|| {
        ConfigError::new(
            "REPORTS_S3_SECRET_ACCESS_KEY",
            "required with REPORTS_S3_BUCKET",
        )
    })?;
    let prefix = match env.get("REPORTS_S3_PREFIX") {
        None => None,
        Some(p) => {
            let p = p.trim_matches('/');
            let ok = !p.is_empty()
                && p.len() <= 200
                && p.split('/').all(|part| {
                    !part.is_empty()
                        && part != "."
                        && part != ".."
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                });
            if !ok {
                return Err(ConfigError::new(
                    "REPORTS_S3_PREFIX",
                    "folder names of A-Z a-z 0-9 _ - . separated by '/'",
                ));
            }
            Some(p.to_string())
        }
    };
    Ok(Some(S3Config {
        path_style: env.flag("REPORTS_S3_PATH_STYLE", endpoint.is_some())?,
        endpoint,
        bucket: bucket.to_string(),
        region: region.to_string(),
        access_key_id: access_key_id.to_string(),
        secret_access_key: Secret::new(secret),
        prefix,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    const BASE: [(&str, &str); 4] = [
        ("REPORTS_S3_BUCKET", "si-reports"),
        ("REPORTS_S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("REPORTS_S3_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("REPORTS_S3_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
    ];

    #[test]
    fn unset_is_off_and_a_full_setup_is_read() {
        assert!(from_env(&env(&[])).unwrap().is_none());
        let c = from_env(&env(&BASE)).unwrap().unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!((c.region.as_str(), c.path_style), ("us-east-1", true));
        assert!(
            !format!("{c:?}").contains("wJalrXUtnFEMI"),
            "secret redacted"
        );
        let aws = from_env(&env(&[
            BASE[0],
            BASE[2],
            BASE[3],
            ("REPORTS_S3_REGION", "eu-west-1"),
        ]))
        .unwrap()
        .unwrap();
        assert!(!aws.path_style && aws.endpoint.is_none());
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let cases: [(&str, &str, &str); 8] = [
            ("REPORTS_S3_BUCKET", "Bad_Bucket", "REPORTS_S3_BUCKET"),
            (
                "REPORTS_S3_ENDPOINT",
                "localhost:9000",
                "REPORTS_S3_ENDPOINT",
            ),
            ("REPORTS_S3_ENDPOINT", "ftp://h", "REPORTS_S3_ENDPOINT"),
            ("REPORTS_S3_ENDPOINT", "http://u:p@h", "REPORTS_S3_ENDPOINT"),
            ("REPORTS_S3_REGION", "EU West", "REPORTS_S3_REGION"),
            ("REPORTS_S3_PATH_STYLE", "maybe", "REPORTS_S3_PATH_STYLE"),
            ("REPORTS_S3_PREFIX", "a/../b", "REPORTS_S3_PREFIX"),
            (
                "REPORTS_S3_ACCESS_KEY_ID",
                "has space",
                "REPORTS_S3_ACCESS_KEY_ID",
            ),
        ];
        for (var, value, named) in cases {
            let mut pairs: Vec<(&str, &str)> =
                BASE.iter().copied().filter(|(k, _)| *k != var).collect();
            pairs.push((var, value));
            let err = from_env(&env(&pairs)).unwrap_err();
            assert_eq!(err.var, named, "{var}={value}: {err}");
        }
        let err = from_env(&env(&[BASE[0], BASE[1], BASE[2]])).unwrap_err();
        assert_eq!(err.var, "REPORTS_S3_SECRET_ACCESS_KEY");
        let err = from_env(&env(&[BASE[1]])).unwrap_err();
        assert_eq!(err.var, "REPORTS_S3_BUCKET");
    }
}
