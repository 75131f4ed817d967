//! Report files in an S3-compatible bucket, end to end: a real S3 server (versitygw's POSIX
//! gateway, installed by `scripts/test`) started by each test on a loopback port of its own and
//! killed by PID; two server instances sharing the primary store and the bucket (each with a
//! local `REPORTS_DIR` of its own, so nothing can pass through a shared disk); the server stopped
//! mid-run; expiry and deletion removing the object; reports on the Redis Streams job queue with
//! the worker's process killed mid-report.

use crate::reports::{
    DAY, HOUR, NO_GEN_LIMIT, Owner, custom, download, generate, owner, pdf_text, status_of, worker,
};
use crate::support::{
    RedisServer, ServerProcess, TestApp, assert_answer, eventually, free_port, wait_listening,
};
use serde_json::json;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};
use superinsights::{
    domain::{ids::DocId, timestamp::now_ms},
    runtime::jobs::Outcome,
};

const ACCESS_KEY: &str = "si-e2e-access";
const SECRET_KEY: &str = "si-e2e-secret-0123456789";
const BUCKET: &str = "si-reports";

/// A real S3-compatible server with one bucket, on a loopback port chosen here.
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// `SUPERINSIGHTS_TEST_S3_BIN`, else versitygw in Go's bin directory.
fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("SUPERINSIGHTS_TEST_S3_BIN") {
        return PathBuf::from(p);
    }
    let gopath = std::env::var("GOPATH").unwrap_or_else(|_| {
        format!(
            "{}/go",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into())
        )
    });
    PathBuf::from(gopath).join("bin/versitygw")
}

impl S3Server {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data").join(BUCKET)).unwrap();
        std::fs::create_dir_all(dir.path().join("meta")).unwrap();
        let mut server = Self {
            child: None,
            port: 0,
            dir,
        };
        let mut errors = Vec::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.launch().await {
                Ok(()) => return server,
                Err(e) => {
                    eprintln!(
                        "the S3 server on {}: {e}; retrying on another port",
                        server.port
                    );
                    errors.push(e);
                }
            }
        }
        panic!("the S3 server never started: {errors:?}");
    }

    /// Starts the gateway on `self.port`; `Err` if the process we started is not the one
    /// listening there (the port was taken).
    async fn launch(&mut self) -> Result<(), String> {
        let bin = binary();
        let mut child = Command::new(&bin)
            .args(["--access", ACCESS_KEY, "--secret", SECRET_KEY])
            .args(["--port", &format!("127.0.0.1:{}", self.port)])
            .arg("posix")
            .arg("--sidecar")
            .arg(self.dir.path().join("meta"))
            .arg(self.dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the S3 test server {} ({e}); scripts/test installs it",
                    bin.display()
                )
            });
        wait_listening(&mut child, &[self.port], Duration::from_secs(20)).await?;
        self.child = Some(child);
        Ok(())
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        assert!(
            Command::new("kill")
                .args([&format!("-{name}"), &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Kills the server (SIGKILL, by PID); its files stay for [`Self::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// The same server again, on the same port and files.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.launch().await {
            panic!("the S3 server on {}: {e}", self.port);
        }
    }

    /// SIGSTOP: connections are accepted by the kernel, nothing is answered.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Whether the bucket holds `key` (the gateway keeps objects as files).
    pub fn has(&self, key: &str) -> bool {
        self.dir
            .path()
            .join("data")
            .join(BUCKET)
            .join(key)
            .is_file()
    }

    /// The environment pointing an instance at this bucket, with its own local `REPORTS_DIR`.
    pub fn env(&self, reports_dir: &Path) -> Vec<(String, String)> {
        vec![
            ("REPORTS_S3_BUCKET".into(), BUCKET.into()),
            (
                "REPORTS_S3_ENDPOINT".into(),
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("REPORTS_S3_REGION".into(), "us-east-1".into()),
            ("REPORTS_S3_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("REPORTS_S3_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("REPORTS_S3_PATH_STYLE".into(), "true".into()),
            ("REPORTS_DIR".into(), reports_dir.to_str().unwrap().into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server must be resumed to die cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

fn pairs(owned: &[(String, String)]) -> Vec<(&str, &str)> {
    owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

async fn file_key(app: &TestApp, id: &str) -> Option<String> {
    crate::reports::stored_report(app, id).await.file_key
}

/// Every file under `dir` that is not scratch space.
fn local_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == ".tmp") {
            continue;
        }
        if p.is_dir() {
            out.extend(local_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn two_instances_share_report_files_through_one_bucket() {
    let s3 = S3Server::start().await;
    let local = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut env_a = s3.env(local.0.path());
    let mut env_b = s3.env(local.1.path());
    for env in [&mut env_a, &mut env_b] {
        env.push(("JOB_WORKERS".into(), "0".into()));
        env.push((NO_GEN_LIMIT.0.into(), NO_GEN_LIMIT.1.into()));
    }
    let first = TestApp::spawn(&pairs(&env_a)).await;
    let second = TestApp::spawn_in(&first.data_dir, &pairs(&env_b)).await;
    let at = now_ms() - HOUR;
    let who = owner(&first, "s3-shared@example.com", at).await;

    // Generated and stored by the first instance, downloaded from the second.
    let id = generate(&first, &who, custom(at, json!({"format": "pdf"}))).await;
    assert!(matches!(
        worker(&first).run_once().await.unwrap(),
        Outcome::Completed(_)
    ));
    let key = file_key(&first, &id).await.expect("stored");
    assert!(s3.has(&key), "the object {key} is in the bucket");
    assert!(
        local_files(local.0.path()).is_empty() && local_files(local.1.path()).is_empty(),
        "nothing is left on either instance's disk"
    );
    assert_eq!(status_of(&second, &who, &id).await["status"], "completed");
    let from_second = download(&second, &who, &id).await;
    assert_eq!(from_second.status(), 200);
    let length = from_second.headers()["content-length"]
        .to_str()
        .unwrap()
        .to_string();
    let pdf = from_second.bytes().await.unwrap().to_vec();
    assert_eq!(length, pdf.len().to_string());
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(pdf_text(&pdf).contains("My First Project"));
    let from_first = download(&first, &who, &id).await.bytes().await.unwrap();
    assert!(
        from_first.as_ref() == pdf.as_slice(),
        "the same bytes from both"
    );

    // A raw CSV generated on the second downloads from the first.
    let raw = generate(
        &second,
        &who,
        custom(
            at,
            json!({"format": "csv", "csvMode": "raw", "dataType": "all"}),
        ),
    )
    .await;
    assert!(matches!(
        worker(&second).run_once().await.unwrap(),
        Outcome::Completed(_)
    ));
    let csv = download(&first, &who, &raw).await.text().await.unwrap();
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("pageviews,")).count(),
        6,
        "{csv}"
    );

    // Expiry (30 days; moved into the past here) removes the object at the next sweep.
    let rid = DocId::parse(&id).unwrap();
    let mut expired = first
        .state
        .stores
        .reports
        .report(rid)
        .await
        .unwrap()
        .unwrap();
    assert!(expired.expires_at.unwrap() - expired.generated_at.unwrap() == 30 * DAY);
    expired.expires_at = Some(now_ms() - 1);
    assert!(
        first
            .state
            .stores
            .reports
            .save_report(&expired)
            .await
            .unwrap()
    );
    assert_eq!(download(&second, &who, &id).await.status(), 410);
    assert_eq!(
        superinsights::services::retention::purge_report_files(
            &second.state.reports,
            second.state.clock.now_ms(),
        )
        .await,
        1
    );
    assert!(!s3.has(&key), "the expired object is deleted");
    assert_eq!(file_key(&first, &id).await, None);

    // Deleting on the first instance removes the object at once.
    let raw_key = file_key(&first, &raw).await.unwrap();
    assert!(s3.has(&raw_key));
    let r = who
        .client
        .post(first.url(&format!("/projects/{}/reports/{raw}/delete", who.id)))
        .header("accept", "application/json")
        .header("x-csrf-token", &who.csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!s3.has(&raw_key), "the deleted report's object is gone");
    assert_eq!(download(&second, &who, &raw).await.status(), 404);
    second.stop().await;
    first.stop().await;
}

async fn run_until_not_idle(app: &TestApp) -> Outcome {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match worker(app).run_once().await.unwrap() {
            Outcome::Idle => {
                assert!(std::time::Instant::now() < deadline, "no job came due");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => return other,
        }
    }
}

async fn report_stage(app: &TestApp, who: &Owner, id: &str) -> (String, String) {
    let s = status_of(app, who, id).await;
    (
        s["status"].as_str().unwrap().to_string(),
        s["currentStage"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn an_s3_outage_fails_the_report_at_the_storing_stage_or_is_retried() {
    let mut s3 = S3Server::start().await;
    let local = tempfile::tempdir().unwrap();
    let mut env = s3.env(local.path());
    env.extend([
        ("JOB_WORKERS".to_string(), "0".to_string()),
        (NO_GEN_LIMIT.0.into(), NO_GEN_LIMIT.1.into()),
        ("JOB_MAX_ATTEMPTS".into(), "2".into()),
        ("JOB_RETRY_BACKOFF_MS".into(), "10".into()),
    ]);
    let app = TestApp::spawn(&pairs(&env)).await;
    let at = now_ms() - HOUR;
    let who = owner(&app, "s3-outage@example.com", at).await;

    let done = generate(&app, &who, custom(at, json!({"format": "csv"}))).await;
    assert!(matches!(
        run_until_not_idle(&app).await,
        Outcome::Completed(_)
    ));

    // The server dies after the report was asked for: the first attempt fails at storing and
    // the report waits for its retry (not failed, not stuck: the job is due again).
    let id = generate(&app, &who, custom(at, json!({"format": "html"}))).await;
    s3.kill();
    let r = download(&app, &who, &done).await;
    assert_eq!(r.status(), 503, "a download while the bucket is down");
    assert!(matches!(
        run_until_not_idle(&app).await,
        Outcome::Retrying(_)
    ));
    let (status, stage) = report_stage(&app, &who, &id).await;
    assert_eq!((status.as_str(), stage.as_str()), ("generating", "storing"));
    // Still down on the last attempt: failed, naming the stage.
    assert!(matches!(run_until_not_idle(&app).await, Outcome::Failed(_)));
    let s = status_of(&app, &who, &id).await;
    assert_eq!(s["status"], "failed", "{s}");
    let message = s["message"].as_str().unwrap();
    assert!(
        message.starts_with("Generation failed during storing: storing the file:"),
        "{message}"
    );
    assert_eq!(download(&app, &who, &id).await.status(), 409);
    let scratch = std::fs::read_dir(local.path().join(".tmp"))
        .unwrap()
        .count();
    assert_eq!(scratch, 0, "no scratch file is left");

    // Down for the first attempt only: the retry stores it and it downloads.
    let id = generate(&app, &who, custom(at, json!({"format": "json"}))).await;
    assert!(matches!(
        run_until_not_idle(&app).await,
        Outcome::Retrying(_)
    ));
    s3.restart().await;
    assert!(matches!(
        run_until_not_idle(&app).await,
        Outcome::Completed(_)
    ));
    let r = download(&app, &who, &id).await;
    assert_answer(r, 200, "\"projectName\": \"My First Project\"").await;
    assert_eq!(
        download(&app, &who, &done).await.status(),
        200,
        "the older file is back"
    );
    app.stop().await;
}

#[tokio::test]
async fn reports_on_the_redis_job_queue_survive_a_worker_process_killed_mid_report() {
    let redis = RedisServer::start().await;
    let s3 = S3Server::start().await;
    let local = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let redis_url = redis.url();
    let queue = |reports_dir: &Path, workers: &str| {
        let mut env = s3.env(reports_dir);
        env.extend([
            ("REDIS_URL".to_string(), redis_url.clone()),
            ("JOB_QUEUE_REDIS".into(), "true".into()),
            ("JOB_WORKERS".into(), workers.into()),
            ("JOB_VISIBILITY_TIMEOUT_MS".into(), "1500".into()),
            (NO_GEN_LIMIT.0.into(), NO_GEN_LIMIT.1.into()),
        ]);
        env
    };
    // The test's own instance asks and reads (no workers); worker processes generate.
    let app = TestApp::spawn(&pairs(&queue(local.0.path(), "0"))).await;
    assert!(
        app.state.jobs.backend().contains("redis"),
        "{}",
        app.state.jobs.backend()
    );
    let at = now_ms() - HOUR;
    let who = owner(&app, "redis-reports@example.com", at).await;
    let mut doomed = ServerProcess::start(&app.data_dir, &pairs(&queue(local.1.path(), "1"))).await;

    // Through the Redis Streams queue to completion.
    let id = generate(&app, &who, custom(at, json!({"format": "pdf"}))).await;
    eventually(
        Duration::from_secs(30),
        "the report completes",
        async || status_of(&app, &who, &id).await["status"] == "completed",
    )
    .await;
    assert_eq!(download(&app, &who, &id).await.status(), 200);

    // The worker's process is killed while the report is storing (the S3 server paused, so
    // the upload hangs): another instance's worker claims it after the visibility timeout.
    s3.pause();
    let id = generate(&app, &who, custom(at, json!({"format": "csv"}))).await;
    eventually(
        Duration::from_secs(30),
        "the worker is storing",
        async || report_stage(&app, &who, &id).await == ("generating".into(), "storing".into()),
    )
    .await;
    doomed.crash();
    s3.resume();
    assert_eq!(
        report_stage(&app, &who, &id).await.0,
        "generating",
        "the killed worker did not finish it"
    );
    let _rescuer = ServerProcess::start(&app.data_dir, &pairs(&queue(local.2.path(), "1"))).await;
    eventually(
        Duration::from_secs(30),
        "another instance finishes it",
        async || status_of(&app, &who, &id).await["status"] == "completed",
    )
    .await;
    let r = download(&app, &who, &id).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("metric,value,dataType,timeframe")
    );
    app.stop().await;
}
