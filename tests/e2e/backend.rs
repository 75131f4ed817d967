//! The e2e backend matrix: which primary store the servers under test use. SQLite (a file in
//! each data directory) by default; MongoDB with `SUPERINSIGHTS_E2E_BACKEND=mongodb` and
//! `SUPERINSIGHTS_TEST_MONGODB_URI`, one database per data directory (so servers sharing a data
//! directory share a database, as they share a SQLite file). Also the store fault each backend
//! can be put through: a held SQLite write lock, or cut connections to MongoDB (a proxy).

#![allow(dead_code)]

use std::{
    hash::{Hash, Hasher},
    net::SocketAddr,
    path::Path,
    sync::{Arc, OnceLock},
};
use tokio::sync::watch;

const BACKEND_VAR: &str = "SUPERINSIGHTS_E2E_BACKEND";
const URI_VAR: &str = "SUPERINSIGHTS_TEST_MONGODB_URI";

/// The primary store every server of this test run uses.
#[derive(Debug)]
pub enum Backend {
    Sqlite,
    MongoDb { uri: String },
}

/// The backend chosen by `SUPERINSIGHTS_E2E_BACKEND` (`sqlite`, the default, or `mongodb`).
/// MongoDB without a URI is a setup error, never a silent fallback to SQLite.
pub fn backend() -> &'static Backend {
    static CHOSEN: OnceLock<Backend> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        let chosen = std::env::var(BACKEND_VAR).unwrap_or_default();
        match chosen.trim().to_ascii_lowercase().as_str() {
            "" | "sqlite" => Backend::Sqlite,
            "mongodb" | "mongo" => {
                let uri = std::env::var(URI_VAR).unwrap_or_default();
                assert!(
                    !uri.trim().is_empty(),
                    "{BACKEND_VAR}=mongodb needs {URI_VAR} (scripts/test starts FerretDB and sets it)"
                );
                Backend::MongoDb {
                    uri: uri.trim().to_string(),
                }
            }
            other => panic!("{BACKEND_VAR}={other}: expected sqlite or mongodb"),
        }
    })
}

pub fn is_mongodb() -> bool {
    matches!(backend(), Backend::MongoDb { .. })
}

/// The name the server gives its store (`Stores::name`, printed by `migrate`).
pub fn name() -> &'static str {
    if is_mongodb() { "mongodb" } else { "sqlite" }
}

/// The MongoDB database of the servers on `data_dir`: stable for one path within one test
/// process, distinct between paths and between runs.
pub fn database_for(data_dir: &Path) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    format!("si_e2e_{}_{:016x}", std::process::id(), hasher.finish())
}

/// The environment that puts a server on `data_dir` onto this run's backend, connecting to
/// `uri` (the server itself, or a [`StoreProxy`] in front of it). Empty for SQLite.
pub fn env_for(data_dir: &Path, uri: Option<&str>) -> Vec<(String, String)> {
    match backend() {
        Backend::Sqlite => Vec::new(),
        Backend::MongoDb { uri: server } => vec![
            ("MONGODB_URI".into(), uri.unwrap_or(server).to_string()),
            ("MONGODB_DB".into(), database_for(data_dir)),
        ],
    }
}

/// Drops `database` on the MongoDB server of this run (no-op on SQLite). Runs on its own
/// thread and runtime, so it can be called from `Drop`.
pub fn drop_database_blocking(database: &str) {
    let Backend::MongoDb { uri } = backend() else {
        return;
    };
    drop_database_at(uri, database);
}

/// Drops `database` on the MongoDB server at `uri`, from any thread or runtime (see
/// [`drop_database_blocking`]).
pub fn drop_database_at(uri: &str, database: &str) {
    let (uri, database) = (uri.to_string(), database.to_string());
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = mongodb::Client::with_uri_str(&uri).await?;
            let outcome = client.database(&database).drop().await;
            client.shutdown().await;
            outcome
        })
    })
    .join();
    if let Ok(Err(e)) = dropped {
        eprintln!("could not drop the test database: {e}");
    }
}

/// Drops its database when dropped: a test app's own database.
pub struct DatabaseGuard(pub String);

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        drop_database_blocking(&self.0);
    }
}

/// Every document of every collection of `database`, as extended JSON text (to search for what
/// the store wrote, as the SQLite tests search the data directory's files).
pub async fn dump_database(database: &str) -> String {
    let Backend::MongoDb { uri } = backend() else {
        panic!("dump_database is for the MongoDB backend");
    };
    use futures::TryStreamExt;
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    let db = client.database(database);
    let mut out = String::new();
    for name in db.list_collection_names().await.unwrap() {
        let docs: Vec<mongodb::bson::Document> = db
            .collection::<mongodb::bson::Document>(&name)
            .find(mongodb::bson::doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for d in docs {
            out.push_str(
                &mongodb::bson::Bson::Document(d)
                    .into_relaxed_extjson()
                    .to_string(),
            );
            out.push('\n');
        }
    }
    client.shutdown().await;
    out
}

/// A TCP proxy between a test app and the MongoDB server, so a test can take the store away
/// from that one app (the server is shared by the whole run). [`StoreProxy::lock_writes`] is
/// the MongoDB counterpart of another connection holding SQLite's write lock: reads still pass,
/// and each write command (`insert`, `update`, `delete`, `findAndModify`) gets its connection
/// closed instead of an answer, until the lock is dropped.
///
/// The proxy's task lives as long as the test's runtime (not the app, whose store handle a
/// test may keep using after `stop`), and owns the app's [`DatabaseGuard`], so the database is
/// dropped when the test ends.
pub struct StoreProxy {
    pub addr: SocketAddr,
    locked: Arc<watch::Sender<bool>>,
}

impl StoreProxy {
    /// Starts a proxy to the host of `upstream_uri` (a single-host `mongodb://` URI).
    pub async fn start(upstream_uri: &str, guard: Option<DatabaseGuard>) -> Self {
        let upstream = single_host(upstream_uri).unwrap_or_else(|| {
            panic!("the e2e store proxy needs a single-host mongodb:// URI, not {upstream_uri}")
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (locked, _) = watch::channel(false);
        let locked = Arc::new(locked);
        let shared = locked.clone();
        tokio::spawn(async move {
            let _guard = guard;
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (upstream, locked) = (upstream.clone(), shared.subscribe());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    tokio::select! {
                        _ = forward_commands(&mut from_client, &mut to_server, locked) => {}
                        _ = tokio::io::copy(&mut from_server, &mut to_client) => {}
                    }
                });
            }
        });
        Self { addr, locked }
    }

    /// `uri` with its host replaced by this proxy (and a direct connection, so the driver
    /// never looks past it).
    pub fn uri(&self, uri: &str) -> String {
        let host = single_host(uri).expect("single-host URI");
        assert!(uri.contains(&host), "the URI names its port: {uri}");
        let replaced = uri.replacen(&host, &self.addr.to_string(), 1);
        let sep = if replaced.contains('?') {
            "&"
        } else if replaced["mongodb://".len()..].contains('/') {
            "?"
        } else {
            "/?"
        };
        format!("{replaced}{sep}directConnection=true")
    }

    /// Refuses every write command until the returned value is dropped.
    pub fn lock_writes(&self) -> WriteLock {
        self.locked.send_replace(true);
        WriteLock(self.locked.clone())
    }
}

/// Writes stay refused while this lives.
pub struct WriteLock(Arc<watch::Sender<bool>>);

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// Copies wire-protocol messages from the driver to the server, one whole message at a time;
/// returns (closing the connection) at the first write command while `locked` holds.
async fn forward_commands(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    locked: watch::Receiver<bool>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut header = [0u8; 16];
        from.read_exact(&mut header).await?;
        let len = i32::from_le_bytes(header[..4].try_into().unwrap());
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l >= 16)
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let mut message = header.to_vec();
        message.resize(len, 0);
        from.read_exact(&mut message[16..]).await?;
        if *locked.borrow()
            && command_name(&message).is_some_and(|c| {
                ["insert", "update", "delete", "findandmodify"]
                    .contains(&c.to_ascii_lowercase().as_str())
            })
        {
            return Ok(());
        }
        to.write_all(&message).await?;
    }
}

/// The command name of an `OP_MSG` (the first key of its body section), if it is one.
fn command_name(message: &[u8]) -> Option<String> {
    const OP_MSG: i32 = 2013;
    let opcode = i32::from_le_bytes(message.get(12..16)?.try_into().ok()?);
    if opcode != OP_MSG {
        return None;
    }
    // Header, then the flag bits, then sections: kind 0 is the body document, kind 1 a
    // document sequence (its size first).
    let mut at = 20;
    loop {
        let kind = *message.get(at)?;
        let size = i32::from_le_bytes(message.get(at + 1..at + 5)?.try_into().ok()?);
        if kind == 0 {
            // The body: its size, then the first element's type byte and name.
            let name_at = at + 6;
            let end = name_at + message.get(name_at..)?.iter().position(|b| *b == 0)?;
            return String::from_utf8(message[name_at..end].to_vec()).ok();
        }
        at += 1 + usize::try_from(size).ok()?;
    }
}

/// `host:port` of a `mongodb://` URI with exactly one host.
fn single_host(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mongodb://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit('@').next()?;
    if host.is_empty() || host.contains(',') {
        return None;
    }
    Some(if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:27017")
    })
}

/// A fault that makes the store refuse every write of one app until released: the SQLite
/// file's write lock held by another connection, or the app's MongoDB writes refused.
pub struct StoreLock {
    sqlite: Option<sqlx::sqlite::SqliteConnection>,
    _mongo: Option<WriteLock>,
}

impl StoreLock {
    /// Holds an exclusive transaction on the SQLite file of the servers on `data_dir`: every
    /// write waits (and, past its busy timeout, fails) until [`StoreLock::release`].
    pub async fn sqlite_file(data_dir: &Path) -> Self {
        use sqlx::{Connection, Executor};
        let path = data_dir.join("superinsights.db");
        let url = format!("sqlite://{}", path.display());
        let mut conn = sqlx::sqlite::SqliteConnection::connect(&url).await.unwrap();
        conn.execute("BEGIN EXCLUSIVE").await.unwrap();
        Self {
            sqlite: Some(conn),
            _mongo: None,
        }
    }

    pub fn mongo(lock: WriteLock) -> Self {
        Self {
            sqlite: None,
            _mongo: Some(lock),
        }
    }

    /// Gives the store back.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.sqlite.take() {
            use sqlx::Executor;
            conn.execute("ROLLBACK").await.unwrap();
        }
    }
}

/// The store of the servers on `data_dir` on this run's backend (its SQLite file or MongoDB
/// database), migrated, opened afresh as another process would (its own pool or client).
pub async fn stores_at(data_dir: &Path) -> superinsights::store::Stores {
    use superinsights::config::{Config, Env};
    let data = data_dir.to_str().unwrap().to_string();
    let backend_env = env_for(data_dir, None);
    let mut pairs: Vec<(&str, &str)> = vec![("DATA_DIR", &data)];
    pairs.extend(backend_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
    let stores = superinsights::store::Stores::open(&config).await.unwrap();
    stores.admin.migrate().await.unwrap();
    stores
}

/// Events of `project` stored on the backend of the servers on `data_dir`.
pub async fn stored_events(data_dir: &Path, project: superinsights::domain::ids::DocId) -> u64 {
    stores_at(data_dir)
        .await
        .stats
        .count(project, superinsights::domain::model::Channel::Events)
        .await
        .unwrap()
}

/// A FerretDB of a test's own (the binary `scripts/test` builds, named by
/// `SUPERINSIGHTS_TEST_FERRETDB_BIN`), for faults that must not touch the shared server: its
/// SQLite files live in the directory the test chooses. Killed on drop.
pub struct PrivateFerretDb {
    pub uri: String,
    child: std::process::Child,
    _uri_dir: tempfile::TempDir,
}

/// The FerretDB binary `scripts/test` builds, if this run has one.
pub fn ferretdb_bin() -> Option<String> {
    std::env::var("SUPERINSIGHTS_TEST_FERRETDB_BIN")
        .ok()
        .filter(|b| !b.is_empty())
}

impl PrivateFerretDb {
    /// Starts one over `dir` on a free port and waits until it listens.
    pub async fn start(dir: &Path) -> Self {
        Self::start_at(dir, "127.0.0.1:0").await
    }

    /// Starts one over `dir` listening on `addr` (to restart a stopped one where its clients
    /// look for it) and waits until it listens.
    pub async fn start_at(dir: &Path, addr: &str) -> Self {
        let bin = ferretdb_bin().unwrap_or_else(|| {
            panic!(
                "this MongoDB test starts a FerretDB of its own and needs \
                 SUPERINSIGHTS_TEST_FERRETDB_BIN (scripts/test sets it)"
            )
        });
        let uri_dir = tempfile::tempdir().unwrap();
        let uri_file = uri_dir.path().join("uri");
        let child = std::process::Command::new(&bin)
            .args(["-listen-addr", addr, "-dir"])
            .arg(dir)
            .arg("-uri-file")
            .arg(&uri_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} starts: {e}"));
        crate::support::eventually(
            std::time::Duration::from_secs(30),
            "the private FerretDB listens",
            async || std::fs::metadata(&uri_file).is_ok_and(|m| m.len() > 0),
        )
        .await;
        let uri = std::fs::read_to_string(&uri_file)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        Self {
            uri,
            child,
            _uri_dir: uri_dir,
        }
    }
}

impl PrivateFerretDb {
    /// `host:port` it listens on.
    pub fn addr(&self) -> String {
        single_host(&self.uri).expect("a single-host URI")
    }
}

impl Drop for PrivateFerretDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::single_host;

    #[test]
    fn single_host_reads_the_authority() {
        assert_eq!(
            single_host("mongodb://127.0.0.1:35187/").as_deref(),
            Some("127.0.0.1:35187")
        );
        assert_eq!(
            single_host("mongodb://u:p@db?x=1").as_deref(),
            Some("db:27017")
        );
        assert_eq!(single_host("mongodb://a:1,b:2/"), None);
    }
}
