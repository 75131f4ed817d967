//! Test harness: the real server on a real loopback port (in-process or as the real binary),
//! on this run's primary store (`crate::backend`: SQLite, or MongoDB in the MongoDB leg), a
//! private `redis-server` per test, and fixtures. No sleeps for readiness: poll with a deadline.

#![allow(dead_code)]

use crate::backend::{self, DatabaseGuard, StoreLock, StoreProxy};
use serde_json::Value;
use std::{
    net::{SocketAddr, TcpListener as StdListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use superinsights::{
    config::{Config, Env},
    domain::{
        clock::{ManualClock, SharedClock, SystemClock},
        ids::DocId,
    },
    startup,
    state::AppState,
    store::{OrgRole, Project, PublicLink},
};

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A port that was free a moment ago. Between this call and a helper process binding it, another
/// process may take it: start helpers through [`spawn_listening`] (or check with
/// [`listens_on`]), which notices and retries.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The inodes of the TCP sockets listening on `port` (any local address, IPv4 or IPv6), from
/// `/proc/net/tcp{,6}`.
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st … inode (column 9); state 0A is LISTEN.
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if *state == "0A"
                && local_port == Some(port)
                && let Ok(inode) = inode.parse()
            {
                inodes.push(inode);
            }
        }
    }
    inodes
}

/// Whether the process `pid` holds a socket listening on `port` (its open files include the
/// listening socket's inode): the process we started, not another one that took the port.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|inode| inodes.contains(&inode))
        })
    })
}

/// Waits until the process we started, `child`, listens on every port of `ports`. `Err` when it
/// exited first (a port was taken: "Address already in use") or another process holds a port
/// and ours never got it within `within`.
pub async fn wait_listening(
    child: &mut Child,
    ports: &[u16],
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited ({status}) before listening on {ports:?}"));
        }
        if ports.iter().all(|&port| listens_on(child.id(), port)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let taken: Vec<u16> = ports
                .iter()
                .copied()
                .filter(|&p| !listening_inodes(p).is_empty() && !listens_on(child.id(), p))
                .collect();
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "not listening on {ports:?} within {within:?} (held by another process: {taken:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a helper process on `n` fresh loopback ports (`spawn(ports)` builds and spawns it) and
/// waits until that process is the one listening on all of them. A port taken between
/// [`free_port`] and the bind (the child exits, or another process answers there) is retried
/// with fresh ports, up to 5 times.
pub async fn spawn_listening(
    what: &str,
    n: usize,
    within: Duration,
    mut spawn: impl FnMut(&[u16]) -> Child,
) -> (Child, Vec<u16>) {
    let mut errors = Vec::new();
    for _ in 0..5 {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut child = spawn(&ports);
        match wait_listening(&mut child, &ports, within).await {
            Ok(()) => return (child, ports),
            Err(e) => {
                eprintln!("{what} on {ports:?}: {e}; retrying on other ports");
                errors.push(e);
            }
        }
    }
    panic!("{what} never started: {errors:?}");
}

/// The server running inside the test process, on a real port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    /// The MongoDB database this app uses (None on SQLite).
    pub database: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// On MongoDB, the app reaches the server through this proxy (see [`Self::lock_database`]),
    /// which also drops the database of an app on its own data directory when the test ends.
    store_proxy: Option<StoreProxy>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// Enables `project`'s public link, as its settings page does; the link's token is in the
    /// answer (`/p/{project}/{token}/…`).
    pub async fn enable_public_link(
        &self,
        project: DocId,
    ) -> superinsights::services::public_links::NewLink {
        superinsights::services::public_links::enable(
            &self.state.stores,
            self.state.config.public_link_pepper.expose(),
            project,
        )
        .await
        .unwrap()
    }

    /// A fresh server with its own data directory and extra environment.
    pub async fn spawn(extra_env: &[(&str, &str)]) -> Self {
        Self::spawn_on_clock(extra_env, SystemClock::shared()).await
    }

    /// A fresh server reading time from `clock` wherever time decides (a [`ManualClock`] the
    /// test advances instead of waiting).
    pub async fn spawn_on_clock(extra_env: &[(&str, &str)], clock: SharedClock) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut app = Self::spawn_with(dir.path(), extra_env, true, clock).await;
        app._dir = Some(dir);
        app
    }

    /// A fresh server on a fresh [`ManualClock`] standing at the real current time; returns
    /// the clock too.
    pub async fn spawn_manual(extra_env: &[(&str, &str)]) -> (Self, std::sync::Arc<ManualClock>) {
        let clock = std::sync::Arc::new(ManualClock::new());
        (Self::spawn_on_clock(extra_env, clock.clone()).await, clock)
    }

    /// A server on an existing data directory (to share it with others).
    pub async fn spawn_in(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::spawn_with(data_dir, extra_env, false, SystemClock::shared()).await
    }

    /// A server on `data_dir`; on MongoDB, `own_database` drops the directory's database when
    /// the test ends.
    async fn spawn_with(
        data_dir: &Path,
        extra_env: &[(&str, &str)],
        own_database: bool,
        clock: SharedClock,
    ) -> Self {
        let data = data_dir.to_str().unwrap().to_string();
        let mut pairs: Vec<(&str, &str)> = vec![("DATA_DIR", &data)];
        // On MongoDB: the database of this data directory, through a proxy of this app's own.
        let own_store = !extra_env.iter().any(|(k, _)| *k == "MONGODB_URI");
        let store_proxy = match backend::backend() {
            backend::Backend::MongoDb { uri } if own_store => {
                let guard = own_database.then(|| DatabaseGuard(backend::database_for(data_dir)));
                Some((StoreProxy::start(uri, guard).await, uri.clone()))
            }
            _ => None,
        };
        let proxied = store_proxy.as_ref().map(|(proxy, uri)| proxy.uri(uri));
        let backend_env = if own_store {
            backend::env_for(data_dir, proxied.as_deref())
        } else {
            Vec::new()
        };
        let database = backend_env
            .iter()
            .find(|(k, _)| k == "MONGODB_DB")
            .map(|(_, v)| v.clone());
        pairs.extend(backend_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        pairs.extend_from_slice(extra_env);
        let config = Config::from_env(&Env::from_pairs(pairs)).expect("test config");
        let app = startup::build_with_clock(
            config,
            superinsights::runtime::jobs::JobHandlers::new(),
            clock,
        )
        .await
        .expect("app builds");
        let state = app.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            state,
            data_dir: data_dir.to_path_buf(),
            http: reqwest::Client::new(),
            database,
            stop: Some(stop),
            served: Some(served),
            store_proxy: store_proxy.map(|(proxy, _)| proxy),
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A fresh server whose disk spool cannot be written (its path lies under a file, in the
    /// returned folder) and whose SQLite store gives up after 100 ms busy: once the store is
    /// locked, nothing can take a write.
    pub async fn spawn_without_spool() -> (tempfile::TempDir, Self) {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("a-file");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let spool_path = blocker.join("spool.ndjson");
        let app = Self::spawn(&[
            ("SQLITE_BUSY_TIMEOUT_MS", "100"),
            ("INGEST_SPOOL_PATH", spool_path.to_str().unwrap()),
        ])
        .await;
        (dir, app)
    }

    /// A fresh server with sessions, the cache and rate limits on `redis`.
    pub async fn spawn_on_redis(redis: &RedisServer) -> Self {
        let url = redis.url();
        Self::spawn(&[
            ("REDIS_URL", &url),
            ("SESSION_STORE_REDIS", "true"),
            ("CACHE_REDIS", "true"),
            ("RATE_LIMIT_REDIS", "true"),
        ])
        .await
    }

    /// Takes the store away from this app's writers until the returned lock is released or
    /// dropped: on SQLite another connection holds the database's write lock; on MongoDB the
    /// app's connections to the server are cut and new ones refused (the server is shared by
    /// the whole run, so it is not stopped).
    pub async fn lock_database(&self) -> StoreLock {
        if let Some(proxy) = &self.store_proxy {
            return StoreLock::mongo(proxy.lock_writes());
        }
        assert!(
            !backend::is_mongodb(),
            "this app was given its own MONGODB_URI; its store cannot be locked"
        );
        StoreLock::sqlite_file(&self.data_dir).await
    }

    /// Whether the raw stored data of this app contains `needle`: every file of the data
    /// directory (SQLite), or every document of the app's database (MongoDB).
    pub async fn stored_data_contains(&self, needle: &str) -> bool {
        match &self.database {
            Some(database) => backend::dump_database(database).await.contains(needle),
            None => crate::support::file_tree_contains(&self.data_dir, needle.as_bytes()),
        }
    }

    /// Waits until the spool is drained, then checks that nothing was dead-lettered and that
    /// the store holds exactly the `acked` events of `project`.
    pub async fn assert_drained_and_stored(&self, project: &Project, acked: u64) {
        eventually(Duration::from_secs(30), "the spool drains", async || {
            !self.state.spool.has_pending()
        })
        .await;
        assert!(
            !self.state.spool.dead_letter_path().exists(),
            "nothing was dead-lettered"
        );
        assert_eq!(
            self.count(project, superinsights::domain::model::Channel::Events)
                .await,
            acked,
            "every acknowledged event is stored, once"
        );
    }

    /// Checks that `project` holds no document of any channel (a refused request wrote nothing).
    pub async fn assert_nothing_stored(&self, project: &Project) {
        for channel in superinsights::domain::model::Channel::ALL {
            assert_eq!(
                self.count(project, channel).await,
                0,
                "nothing written to {channel:?}"
            );
        }
    }

    /// A project (with its owner and workspace) created through the real store.
    pub async fn project(&self) -> Project {
        let email = format!(
            "owner-{}@test.example",
            superinsights::domain::ids::random_hex(6)
        );
        superinsights::services::accounts::provision(
            &self.state.stores,
            &email,
            "password123",
            superinsights::domain::records::PlatformRole::User,
            "Test",
        )
        .await
        .unwrap()
        .project
    }

    /// The JSON body of `/readyz` (what each backend reports: connected, lag, counters).
    pub async fn readiness(&self) -> Value {
        get_json(&self.http, self, "/readyz").await.1
    }

    /// Project `id` as the store holds it (it must exist).
    pub async fn stored_project(&self, id: DocId) -> Project {
        let found = self.state.stores.projects.project(id).await.unwrap();
        found.expect("the project is stored")
    }

    /// The public link of project `id` as the store holds it (it must exist).
    pub async fn stored_public_link(&self, id: DocId) -> PublicLink {
        let found = self.state.stores.projects.public_link(id).await.unwrap();
        found.expect("the public link is stored")
    }

    /// Makes the registered user `email` a member, with `role`, of the organization that owns
    /// `project`.
    pub async fn join_org_of(&self, project: DocId, email: &str, role: OrgRole) {
        let org = self.stored_project(project).await.org_id;
        let accounts = &self.state.stores.accounts;
        let user = accounts.user_by_email(email).await.unwrap();
        let user = user.expect("the user is registered");
        accounts.add_member(org, user.id, role).await.unwrap();
    }

    /// POSTs JSON to a `/v1` channel with the key as a Bearer token.
    pub async fn ingest(&self, channel: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/{channel}")))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn count(
        &self,
        project: &Project,
        channel: superinsights::domain::model::Channel,
    ) -> u64 {
        self.state
            .stores
            .stats
            .count(project.id, channel)
            .await
            .unwrap()
    }

    /// Graceful shutdown, waiting for the drain.
    pub async fn stop(self) {
        let Self {
            state,
            stop,
            served,
            _dir,
            ..
        } = self;
        // The test's handle on the state keeps the ingest queue open, and the drain would wait
        // for it until its timeout (SHUTDOWN_TIMEOUT_SECS).
        drop(state);
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        if let Some(served) = served {
            served.await.unwrap().unwrap();
        }
        drop(_dir);
    }
}

/// A private redis-server (or Sentinel) on a free loopback port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Arguments after the defaults (a replica's `--replicaof`, cluster settings).
    extra: Vec<String>,
    /// Runs as a Sentinel with this configuration file (Sentinel rewrites it).
    sentinel_conf: Option<PathBuf>,
    /// The password [`cli`](Self::cli) authenticates with (the server's `--requirepass`).
    pub password: Option<String>,
    /// More ports the process must listen on besides `port` (a cluster node's bus port).
    also: Vec<u16>,
}

impl RedisServer {
    /// A server on a fresh port (retried on another one if the port was taken meanwhile).
    pub async fn start() -> Self {
        Self::start_args(&[]).await
    }

    /// A server on a fresh port with extra `redis-server` arguments (`--replicaof`, …).
    pub async fn start_args(extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        Self::start_ports(0, |_, _| extra.clone()).await
    }

    /// A server on a fresh port with `spare` more fresh ports; `extra(port, spare_ports)` gives
    /// its extra arguments (a cluster node's `--cluster-port`, TLS-only `--port 0 --tls-port`).
    /// The process must listen on all of them; a port taken meanwhile is retried with new ones.
    pub async fn start_ports(spare: usize, extra: impl Fn(u16, &[u16]) -> Vec<String>) -> Self {
        let mut errors = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            let also: Vec<u16> = (0..spare).map(|_| free_port()).collect();
            let mut server = Self {
                port,
                child: None,
                dir: tempfile::tempdir().unwrap(),
                extra: extra(port, &also),
                sentinel_conf: None,
                password: None,
                also,
            };
            match server.try_restart().await {
                Ok(()) => return server,
                Err(e) => {
                    eprintln!("redis-server on {port}: {e}; retrying on another port");
                    errors.push(e);
                }
            }
        }
        panic!("redis-server never started: {errors:?}");
    }

    /// A server on this exact port (one a client was configured with before the server
    /// existed); panics if another process holds it.
    pub async fn start_on(port: u16) -> Self {
        Self::start_with(port, &[]).await
    }

    /// Like [`start_on`](Self::start_on), with extra `redis-server` arguments.
    pub async fn start_with(port: u16, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self {
            port,
            child: None,
            dir,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            sentinel_conf: None,
            password: None,
            also: Vec::new(),
        };
        server.restart().await;
        server
    }

    /// A Sentinel on a free port watching the primary on `primary_port` as `service`, with
    /// short timings: the primary counts as down after 1 s without an answer, and 2 sentinels
    /// must agree. `auth_pass`: the watched servers' password; `password`: the sentinel's own
    /// (`requirepass`, also what it tells the other sentinels).
    pub async fn sentinel(
        service: &str,
        primary_port: u16,
        auth_pass: Option<&str>,
        password: Option<&str>,
    ) -> Self {
        let mut extra = String::new();
        if let Some(pw) = auth_pass {
            extra += &format!("sentinel auth-pass {service} {pw}\n");
        }
        if let Some(pw) = password {
            extra += &format!("requirepass {pw}\nsentinel sentinel-pass {pw}\n");
        }
        let mut sentinel = Self::sentinel_with(service, primary_port, |_| extra.clone()).await;
        sentinel.password = password.map(str::to_string);
        sentinel
    }

    /// Like [`sentinel`](Self::sentinel), with configuration lines `extra(port)` appended
    /// (later lines win: `port 0` plus `tls-port <port>` makes a TLS-only Sentinel).
    pub async fn sentinel_with(
        service: &str,
        primary_port: u16,
        extra: impl Fn(u16) -> String,
    ) -> Self {
        let mut errors = Vec::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let conf = dir.path().join("sentinel.conf");
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {service} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {service} 1000\n\
                 sentinel failover-timeout {service} 10000\n\
                 sentinel parallel-syncs {service} 1\n",
                dir = dir.path().display()
            );
            text += &extra(port);
            std::fs::write(&conf, text).unwrap();
            let mut server = Self {
                port,
                child: None,
                dir,
                extra: Vec::new(),
                sentinel_conf: Some(conf),
                password: None,
                also: Vec::new(),
            };
            match server.try_restart().await {
                Ok(()) => return server,
                Err(e) => {
                    eprintln!("sentinel on {port}: {e}; retrying on another port");
                    errors.push(e);
                }
            }
        }
        panic!("redis sentinel never started: {errors:?}");
    }

    /// Runs `redis-cli` against this server with `commands` (one per line, on one connection);
    /// returns its output.
    pub async fn cli(&self, commands: &str) -> String {
        use tokio::io::AsyncWriteExt;
        let mut command = tokio::process::Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.password {
            command.args(["--no-auth-warning", "-a", password]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-cli is installed with redis-server");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(commands.as_bytes()).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and waits until it is the process listening there;
    /// panics if another process holds the port.
    pub async fn restart(&mut self) {
        if let Err(e) = self.try_restart().await {
            panic!("redis-server on {}: {e}", self.port);
        }
    }

    /// (Re)starts the server on the same port(s): `Ok` once the process started here listens on
    /// them, `Err` when it exited first (a port taken) or another process answers there.
    async fn try_restart(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        match &self.sentinel_conf {
            Some(conf) => {
                command.arg(conf).arg("--sentinel");
            }
            None => {
                command
                    .args([
                        "--port",
                        &self.port.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .arg("--dir")
                    .arg(self.dir.path())
                    .args(&self.extra);
            }
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        let mut ports = vec![self.port];
        ports.extend(&self.also);
        wait_listening(&mut child, &ports, Duration::from_secs(10)).await?;
        self.child = Some(child);
        Ok(())
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server running").id()
    }

    /// Sends a signal (`STOP` freezes the server with its sockets open, `CONT` thaws it).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server running").id();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Kills the server (an outage).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The real `superinsights` binary as a child process.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

/// Where a [`ServerProcess`]'s stderr goes.
pub enum StderrTo {
    /// The test's own stderr.
    Inherit,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// No file descriptor 2 at all.
    Closed,
}

impl ServerProcess {
    pub async fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::start_with(data_dir, extra_env, StderrTo::Inherit).await
    }

    /// Starts the binary with its stderr as given and waits until it answers `/healthz`.
    pub async fn start_with(data_dir: &Path, extra_env: &[(&str, &str)], stderr: StderrTo) -> Self {
        let mut errors = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            match Self::spawn(data_dir, extra_env, &stderr, port).await {
                Ok(server) => return server,
                Err(e) => {
                    eprintln!("server process on {port}: {e}; retrying on another port");
                    errors.push(e);
                }
            }
        }
        panic!("the server process never started: {errors:?}");
    }

    /// Starts the binary on `port` (a restarted instance takes its predecessor's address, as a
    /// load balancer's upstream list expects).
    pub async fn start_on(data_dir: &Path, extra_env: &[(&str, &str)], port: u16) -> Self {
        match Self::spawn(data_dir, extra_env, &StderrTo::Inherit, port).await {
            Ok(server) => server,
            Err(e) => panic!("server process on {port}: {e}"),
        }
    }

    /// Starts the binary on `port`; `Err` when the process started here is not the one
    /// listening there (it exited: the port was taken).
    async fn spawn(
        data_dir: &Path,
        extra_env: &[(&str, &str)],
        stderr: &StderrTo,
        port: u16,
    ) -> Result<Self, String> {
        let binary = env!("CARGO_BIN_EXE_superinsights");
        let mut cmd = match stderr {
            // The shell closes fd 2, then becomes the server.
            StderrTo::Closed => {
                let mut sh = Command::new("sh");
                sh.args(["-c", r#"exec "$0" 2>&-"#, binary]);
                sh
            }
            _ => Command::new(binary),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATA_DIR", data_dir)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("ENV_FILE", "/nonexistent")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(match stderr {
                StderrTo::Inherit => Stdio::inherit(),
                StderrTo::Full => Stdio::from(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/full")
                        .unwrap(),
                ),
                StderrTo::Closed => Stdio::null(),
            });
        if !extra_env.iter().any(|(k, _)| *k == "MONGODB_URI") {
            cmd.envs(backend::env_for(data_dir, None));
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        // The binary binds its port after opening the store, so this also waits for startup.
        wait_listening(&mut child, &[port], Duration::from_secs(20)).await?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let server = Self { child, addr };
        let url = format!("http://{addr}/healthz");
        eventually(
            Duration::from_secs(20),
            "server process answers /healthz",
            async || reqwest::get(&url).await.is_ok_and(|r| r.status() == 200),
        )
        .await;
        Ok(server)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM")
    }

    /// SIGKILL: the process ends at once, nothing flushed, no destructor run.
    pub fn crash(&mut self) -> std::process::ExitStatus {
        self.signal("KILL")
    }

    fn signal(&mut self, name: &str) -> std::process::ExitStatus {
        Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with arguments and environment; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_superinsights"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENV_FILE", "/nonexistent")
        .args(args);
    // A command on a data directory runs on that directory's store of this run's backend.
    if let Some((_, data)) = env.iter().find(|(k, _)| *k == "DATA_DIR")
        && !env.iter().any(|(k, _)| *k == "MONGODB_URI")
    {
        cmd.envs(backend::env_for(Path::new(data), None));
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// Browser-like helpers for the server-rendered pages (cookie jar, no redirect following).

/// A browser-like client: keeps cookies, does not follow redirects (so tests can see them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `_csrf` value of the first form on a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"_csrf\" value=\"")
        .expect("page has a CSRF field")
        + "name=\"_csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

/// The `Location` header of a response ("" when absent).
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A server the tests reach over HTTP: the in-process [`TestApp`] or a [`ServerProcess`].
pub trait Served {
    /// The absolute URL of `path` on this server.
    fn url(&self, path: &str) -> String;
}

impl Served for TestApp {
    fn url(&self, path: &str) -> String {
        TestApp::url(self, path)
    }
}

impl Served for ServerProcess {
    fn url(&self, path: &str) -> String {
        ServerProcess::url(self, path)
    }
}

impl<T: Served> Served for &T {
    fn url(&self, path: &str) -> String {
        (**self).url(path)
    }
}

/// GETs a page as a browser would (Accept: text/html); returns (status, body).
pub async fn page(
    client: &reqwest::Client,
    app: &impl Served,
    path: &str,
) -> (reqwest::StatusCode, String) {
    let r = get_accepting(client, app, path, "text/html").await;
    (r.status(), r.text().await.unwrap())
}

/// GETs `path` as the `si` CLI does (Accept: application/json); returns (status, body), the body
/// `Null` when it is not JSON.
pub async fn get_json(client: &reqwest::Client, app: &impl Served, path: &str) -> (u16, Value) {
    let r = get_accepting(client, app, path, "application/json").await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Asserts that `r` answered `status` with a body containing `needle`.
pub async fn assert_answer(r: reqwest::Response, status: u16, needle: &str) {
    assert_eq!(r.status(), status);
    let body = r.text().await.unwrap();
    assert!(body.contains(needle), "{needle:?} not in {body}");
}

/// POSTs a url-encoded form with `_csrf` first, as a browser would.
pub async fn post_form(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![("_csrf", csrf)];
    form.extend_from_slice(fields);
    client
        .post(app.url(path))
        .header("accept", "text/html")
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// Registers `email` (password `password-123`) and returns (client, the first project's
/// settings path).
pub async fn register(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let client = browser();
    let (status, html) = page(&client, app, "/auth/register").await;
    assert_eq!(status, 200);
    let r = post_form(
        &client,
        app,
        "/auth/register",
        &csrf_of(&html),
        &[("email", email), ("password", "password-123")],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    // Sign-up leads to the first project's setup page (the guided first run).
    let to = location(&r);
    assert!(
        to.starts_with("/projects/") && to.ends_with("/setup"),
        "{to}"
    );
    (client, to.replace("/setup", "/settings"))
}

/// Logs in with a fresh client; returns it with the login response.
pub async fn login(
    app: &TestApp,
    email: &str,
    password: &str,
) -> (reqwest::Client, reqwest::Response) {
    let client = browser();
    let (_, html) = page(&client, app, "/auth/login").await;
    let r = post_form(
        &client,
        app,
        "/auth/login",
        &csrf_of(&html),
        &[("email", email), ("password", password)],
    )
    .await;
    (client, r)
}

/// The project id in a `/projects/{id}/settings` path.
pub fn project_id_of(settings: &str) -> String {
    settings.split('/').nth(2).unwrap().to_string()
}

/// The public (ingestion) key of project `id`, read from the store.
pub async fn public_key_of(app: &TestApp, id: &str) -> String {
    let pid = DocId::parse(id).unwrap();
    app.stored_project(pid).await.public_api_key
}

/// Registers `email` with its fresh project: (signed-in client, project id, public key).
pub async fn member_with_project(app: &TestApp, email: &str) -> (reqwest::Client, String, String) {
    let (client, settings) = register(app, email).await;
    let id = project_id_of(&settings);
    let key = public_key_of(app, &id).await;
    (client, id, key)
}

/// GETs `path` with an `Accept` header.
pub async fn get_accepting(
    client: &reqwest::Client,
    app: &impl Served,
    path: &str,
    accept: &str,
) -> reqwest::Response {
    client
        .get(app.url(path))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

/// What a browser sends as `Accept` for a page.
pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// GETs `path` as the `si` CLI does and returns the JSON body (asserting 200 and JSON).
pub async fn json_of(client: &reqwest::Client, app: &impl Served, path: &str) -> Value {
    let r = get_accepting(client, app, path, "application/json").await;
    assert_eq!(r.status(), 200, "{path}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{path}"
    );
    r.json().await.unwrap()
}

/// GETs `path` with `accept` and returns the HTML body (asserting 200 and HTML).
pub async fn html_of(client: &reqwest::Client, app: &TestApp, path: &str, accept: &str) -> String {
    let r = get_accepting(client, app, path, accept).await;
    assert_eq!(r.status(), 200, "{path}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{path} with {accept}"
    );
    r.text().await.unwrap()
}

/// Opens `form_page` and posts `fields` to `action` with that page's CSRF token, as a browser
/// submitting a form would.
pub async fn submit(
    client: &reqwest::Client,
    app: &TestApp,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (status, html) = page(client, app, form_page).await;
    assert_eq!(status, 200, "{form_page}: {html}");
    post_form(client, app, action, &csrf_of(&html), fields).await
}

/// Whether the headless-Chromium tests can run here. Outside CI a missing prerequisite skips
/// `what` with a message; in CI it fails the test.
pub fn browser_suite_available(what: &str) -> bool {
    let Some(missing) = crate::browser::missing_browser_prerequisite() else {
        return true;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "the browser tests must run in CI: {missing}"
    );
    eprintln!("SKIPPED {what}: {missing}; scripts/test installs everything");
    false
}

/// Runs `node --test tests/browser/{script}` against `app` (`SI_URL`) with `env`, and asserts it
/// passed.
pub async fn run_browser_script(app: &TestApp, script: &str, env: &[(&str, &str)]) {
    let path = format!("tests/browser/{script}");
    let status = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", &path])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SI_URL", format!("http://{}", app.addr))
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .status()
        .await
        .expect("node runs");
    assert!(status.success(), "{path} failed");
}

impl RedisServer {
    /// The consumer names of `group` on `stream` (`XINFO CONSUMERS`), empty when there is none.
    pub async fn consumer_names(&self, stream: &str, group: &str) -> Vec<String> {
        let out = self
            .cli(&format!("XINFO CONSUMERS {stream} {group}\n"))
            .await;
        let mut lines = out.lines();
        let mut names = Vec::new();
        while let Some(line) = lines.next() {
            if line.trim() == "name"
                && let Some(name) = lines.next()
            {
                names.push(name.trim().to_string());
            }
        }
        names
    }

    /// The app's Redis client on this server, once it answers `PING`.
    pub async fn connected_handle(&self) -> superinsights::runtime::redis::RedisHandle {
        let config = superinsights::config::RedisConfig {
            url: Some(superinsights::config::Secret::new(self.url())),
            ..Default::default()
        };
        let handle = superinsights::runtime::redis::RedisHandle::start(&config)
            .unwrap()
            .unwrap();
        eventually(Duration::from_secs(10), "fred connects", async || {
            handle.ping().await.is_ok()
        })
        .await;
        handle
    }
}

/// The `/metrics` page of `server` (the tests run without `METRICS_TOKEN`).
pub async fn metrics_text(server: &impl Served) -> String {
    let r = reqwest::get(server.url("/metrics")).await.unwrap();
    r.text().await.unwrap()
}

/// The sum of every series of metric `name` whose labels contain `label` on `server`.
pub async fn metric_sum(server: &impl Served, name: &str, label: &str) -> f64 {
    metrics_text(server)
        .await
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `command` to its end and returns its standard output; a failed exit fails the test with
/// what the command printed.
pub fn stdout_of(command: &mut std::process::Command) -> Vec<u8> {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether any file under `dir` contains `needle` (the raw bytes, as an attacker reading the
/// disk would see them).
pub fn file_tree_contains(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            file_tree_contains(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}
