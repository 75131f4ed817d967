//! The MongoDB side of `si-load`'s runs: which URIs it accepts (loopback only), counting what a
//! run stored, and dropping a run's database.

use std::time::Duration;

/// Every host of a `mongodb://` URI must be a loopback address (si-load never leaves the machine).
pub fn uri_is_loopback(uri: &str) -> Result<(), String> {
    let rest = uri
        .trim()
        .strip_prefix("mongodb://")
        .ok_or("--mongodb-uri: only mongodb:// URIs (no SRV lookups) are supported")?;
    let hosts = rest.split(['/', '?']).next().unwrap_or("");
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    if hosts.is_empty() {
        return Err("--mongodb-uri: no host".into());
    }
    for host in hosts.split(',') {
        let name = if let Some(v6) = host.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            host.split(':').next().unwrap_or("")
        };
        let loopback = name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "--mongodb-uri: {name:?} is not a loopback address; si-load only talks to this machine"
            ));
        }
    }
    Ok(())
}

/// Documents in the collections the ingest suite writes to (page views and events).
pub async fn count_ingested(uri: &str, database: &str) -> Result<u64, String> {
    let work = async {
        let client = mongodb::Client::with_uri_str(uri).await?;
        let db = client.database(database);
        let mut total = 0;
        for name in ["pageviews", "events"] {
            total += db
                .collection::<mongodb::bson::Document>(name)
                .count_documents(mongodb::bson::doc! {})
                .await?;
        }
        client.shutdown().await;
        Ok::<u64, mongodb::error::Error>(total)
    };
    match tokio::time::timeout(Duration::from_secs(120), work).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(format!("count in MongoDB database {database}: {e}")),
        Err(_) => Err(format!("counting in MongoDB database {database} timed out")),
    }
}

/// Drops a run's MongoDB database (best effort, bounded).
pub async fn drop_database(uri: &str, database: &str) {
    let work = async {
        let client = mongodb::Client::with_uri_str(uri).await?;
        let outcome = client.database(database).drop().await;
        client.shutdown().await;
        outcome
    };
    match tokio::time::timeout(Duration::from_secs(60), work).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("si-load: could not drop MongoDB database {database}: {e}"),
        Err(_) => eprintln!("si-load: dropping MongoDB database {database} timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_mongodb_uris_are_accepted() {
        for ok in [
            "mongodb://127.0.0.1:27017",
            "mongodb://user:pw@localhost:1234/db?x=1",
            "mongodb://[::1]:27017/",
            "mongodb://127.0.0.1:1,127.0.0.2:2",
        ] {
            assert!(uri_is_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "mongodb://db.example:27017",
            "mongodb+srv://cluster.example",
            "mongodb://127.0.0.1:1,10.0.0.1:2",
            "mongodb://",
        ] {
            assert!(uri_is_loopback(bad).is_err(), "{bad}");
        }
    }
}
