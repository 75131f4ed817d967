//! `REDIS_URL` read in fred's URL grammar, checked strictly before anything connects: one
//! server (`redis://`), a Sentinel-watched primary (`redis-sentinel://`) or a Cluster
//! (`redis-cluster://`), each also over TLS (`rediss…`). It only validates and describes the
//! URL; the connection itself is `runtime::redis`'s. Messages never repeat the URL (it may hold
//! a password).

use std::fmt;

/// Which kind of Redis deployment the URL names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server.
    #[default]
    Single,
    /// A primary found through Sentinel: the URL's host and every `node=` are sentinels.
    Sentinel { service: String, sentinels: usize },
    /// A Redis Cluster: the URL's host and every `node=` are seed nodes.
    Cluster { seeds: usize },
}

/// What a valid `REDIS_URL` says, besides the parts fred reads itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTarget {
    pub topology: RedisTopology,
    pub tls: bool,
    /// The database in the URL path (`/N`), when there is one.
    pub db: Option<u8>,
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.topology {
            RedisTopology::Single => f.write_str("one server")?,
            RedisTopology::Sentinel { service, sentinels } => write!(
                f,
                "sentinel (service {service}, {sentinels} sentinel{})",
                if *sentinels == 1 { "" } else { "s" }
            )?,
            RedisTopology::Cluster { seeds } => write!(
                f,
                "cluster ({seeds} seed node{})",
                if *seeds == 1 { "" } else { "s" }
            )?,
        }
        if self.tls {
            f.write_str(", tls")?;
        }
        Ok(())
    }
}

const SCHEMES: &str = "redis://, rediss://, redis-sentinel://, rediss-sentinel://, redis-cluster:// or rediss-cluster://";

/// Parses `url` (the value of `REDIS_URL`); the error says what is wrong without the URL.
pub fn parse(url: &str) -> Result<RedisTarget, String> {
    let (scheme, _) = url
        .split_once("://")
        .ok_or_else(|| format!("not a URL: expected it to start with {SCHEMES}"))?;
    let (kind, tls) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (Kind::Single, false),
        "rediss" => (Kind::Single, true),
        "redis-sentinel" => (Kind::Sentinel, false),
        "rediss-sentinel" => (Kind::Sentinel, true),
        "redis-cluster" => (Kind::Cluster, false),
        "rediss-cluster" => (Kind::Cluster, true),
        other => {
            return Err(format!(
                "unknown scheme \"{}\": expected {SCHEMES}",
                other.chars().take(32).collect::<String>()
            ));
        }
    };
    let parsed = url::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if parsed.port() == Some(0) {
        return Err("port 0: the port must be 1 to 65535".into());
    }
    let mut nodes = 0usize;
    let mut service: Option<String> = None;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "node" => {
                check_node(&value)?;
                nodes += 1;
            }
            "sentinelServiceName" => service = Some(value.into_owned()),
            "sentinelUsername" | "sentinelPassword" => {}
            other => {
                return Err(format!(
                    "unknown parameter \"{}\" (known: node, sentinelServiceName, sentinelUsername, sentinelPassword)",
                    other.chars().take(32).collect::<String>()
                ));
            }
        }
        if kind != Kind::Sentinel && key.starts_with("sentinel") {
            return Err(format!(
                "{key} applies only to redis-sentinel:// and rediss-sentinel://"
            ));
        }
    }
    if kind == Kind::Single && nodes > 0 {
        return Err(
            "node= lists further sentinels or cluster nodes: use redis-sentinel:// or redis-cluster://"
                .into(),
        );
    }
    let db = match parsed.path().trim_start_matches('/') {
        "" => None,
        path => match path.parse::<u8>() {
            Ok(db) if db <= 15 => Some(db),
            _ => {
                return Err(format!(
                    "the path names the database: expected /0 to /15, got /{}",
                    path.chars().take(32).collect::<String>()
                ));
            }
        },
    };
    let topology = match kind {
        Kind::Single => RedisTopology::Single,
        Kind::Sentinel => RedisTopology::Sentinel {
            service: service.filter(|s| !s.is_empty()).ok_or(
                "redis-sentinel:// needs sentinelServiceName=<the name the sentinels monitor>",
            )?,
            sentinels: nodes + 1,
        },
        Kind::Cluster => {
            if db.is_some_and(|db| db != 0) {
                return Err("Redis Cluster has only database 0".into());
            }
            RedisTopology::Cluster { seeds: nodes + 1 }
        }
    };
    // fred reads the URL itself when connecting; it must agree that it is valid.
    fred::types::config::Config::from_url(url).map_err(|e| e.details().to_string())?;
    Ok(RedisTarget { topology, tls, db })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Single,
    Sentinel,
    Cluster,
}

/// A `node=` value: `host:port` (fred reads no other form, so no IPv6 literal).
fn check_node(value: &str) -> Result<(), String> {
    let shown: String = value.chars().take(64).collect();
    let Some((host, port)) = value.split_once(':') else {
        return Err(format!("node={shown}: expected host:port"));
    };
    if host.is_empty() || port.contains(':') {
        return Err(format!(
            "node={shown}: expected host:port (IPv6 literals are not supported here)"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("node={shown}: the port must be 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_topology_is_read_from_its_scheme() {
        let single = parse("redis://:pw@cache:6380/2").unwrap();
        assert_eq!(single.topology, RedisTopology::Single);
        assert_eq!((single.tls, single.db), (false, Some(2)));
        assert_eq!(single.to_string(), "one server");

        let sentinel = parse(
            "rediss-sentinel://s1:26379/1?sentinelServiceName=si&node=s2:26379&node=s3:26380",
        )
        .unwrap();
        assert_eq!(
            sentinel.topology,
            RedisTopology::Sentinel {
                service: "si".into(),
                sentinels: 3
            }
        );
        assert_eq!((sentinel.tls, sentinel.db), (true, Some(1)));
        assert_eq!(
            sentinel.to_string(),
            "sentinel (service si, 3 sentinels), tls"
        );

        let cluster = parse("redis-cluster://u:p@n1:7000?node=n2:7001").unwrap();
        assert_eq!(cluster.topology, RedisTopology::Cluster { seeds: 2 });
        assert_eq!(cluster.to_string(), "cluster (2 seed nodes)");
        assert!(parse("rediss://cache").unwrap().tls);
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason_but_never_the_url() {
        for (url, reason) in [
            ("http://cache:6379", "unknown scheme \"http\""),
            ("cache:6379", "not a URL"),
            ("redis-sentinel://s1:26379/0", "needs sentinelServiceName"),
            (
                "redis-sentinel://s1:26379?sentinelServiceName=",
                "needs sentinelServiceName",
            ),
            ("redis://:secretpw@cache:99999", "invalid port"),
            ("redis://:secretpw@cache:abc", "invalid port"),
            ("redis://cache:0", "port 0"),
            ("redis-cluster://n1:7000?node=n2:70000", "node=n2:70000"),
            ("redis-cluster://n1:7000?node=n2", "expected host:port"),
            ("redis-cluster://n1:7000/3", "only database 0"),
            ("redis://cache/16", "/0 to /15"),
            ("redis://cache?node=b:1", "use redis-sentinel://"),
            ("redis://cache?sentinelServiceName=x", "applies only to"),
            (
                "redis-sentinel://s:1?sentinelservicename=x",
                "unknown parameter",
            ),
            ("redis://", "no host"),
        ] {
            let err = parse(url).expect_err(url);
            assert!(err.contains(reason), "{url}: {err}");
            assert!(!err.contains("secretpw"), "{url}: {err}");
        }
    }
}
