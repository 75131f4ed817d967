//! The real binary: SIGTERM drains what was accepted, and several processes share one store (a
//! SQLite file, or a MongoDB database in the MongoDB leg).

use crate::support::{ServerProcess, run_cli};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use superinsights::domain::ids::DocId;

/// Creates the admin and first project in `dir` with the CLI; returns (project id, public key).
pub fn create_admin(dir: &std::path::Path) -> (DocId, String) {
    let data = dir.to_str().unwrap();
    let (code, out, err) = run_cli(
        &["create-admin", "--email", "admin@example.com"],
        &[
            ("DATA_DIR", data),
            ("SUPERINSIGHTS_ADMIN_PASSWORD", "a-strong-password"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let field = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .to_string()
    };
    let id = field("project:")
        .trim_matches(|c| c == '(' || c == ')')
        .to_string();
    (
        DocId::parse(&id).expect("project id printed"),
        field("public key:"),
    )
}

/// These tests load the server as hard as they can; rate limits are not what they measure.
const UNLIMITED: [(&str, &str); 2] = [
    ("RATE_LIMIT_INGEST_IP", "off"),
    ("RATE_LIMIT_INGEST_PROJECT", "off"),
];

/// Events of `project` stored by the servers on `dir` (its SQLite file or MongoDB database).
pub async fn stored_events(dir: &std::path::Path, project: DocId) -> u64 {
    crate::backend::stored_events(dir, project).await
}

/// Sends 5-event batches from `workers` clients until told to stop; counts acknowledged events.
fn load(
    urls: Vec<String>,
    key: String,
    workers: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|w| {
            let (url, key, stop, acked) = (
                urls[w % urls.len()].clone(),
                key.clone(),
                stop.clone(),
                acked.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let items: Vec<Value> = (0..5)
                        .map(|i| json!({"eventName": "load", "properties": {"w": w, "i": i}}))
                        .collect();
                    match http
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&json!({"items": items}))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 201 || r.status() == 202 => {
                            acked.fetch_add(5, Ordering::Relaxed);
                        }
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        // The server closed: no acknowledgement, nothing promised.
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn sigterm_stops_accepting_and_stores_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let mut server = ServerProcess::start(dir.path(), &UNLIMITED).await;
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers = load(
        vec![server.url("/v1/events")],
        key,
        16,
        stop.clone(),
        acked.clone(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(status.success(), "clean exit after drain: {status:?}");
    let acked = acked.load(Ordering::Relaxed);
    assert!(acked > 0, "load ran before the signal");
    assert_eq!(
        stored_events(dir.path(), project).await,
        acked,
        "every acknowledged event is stored"
    );
}

#[tokio::test]
async fn two_processes_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let mut a = ServerProcess::start(dir.path(), &UNLIMITED).await;
    let mut b = ServerProcess::start(dir.path(), &UNLIMITED).await;
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers = load(
        vec![a.url("/v1/events"), b.url("/v1/events")],
        key,
        8,
        stop.clone(),
        acked.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    let acked = acked.load(Ordering::Relaxed);
    assert!(acked > 0);
    assert_eq!(stored_events(dir.path(), project).await, acked);
}
