//! The server's background tasks, owned: every task the crate starts goes through [`spawn`],
//! [`spawn_loop`] or [`spawn_handle`], which log a task that panics or returns an error and count
//! it (`si_task_failures_total{task}`). A [`TaskSet`] is started and stopped with the server
//! (`startup`): tasks spawned while it is current (during `build`, from a request, or from another
//! owned task) are kept in it and drained on shutdown with a deadline. Outside any set (a store
//! opened by a test or a tool) tasks run detached, still logged and counted.
//!
//! Must not know what the tasks do; callers name them from a fixed set of words.

use futures::FutureExt;
use std::{
    collections::HashMap,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    sync::watch,
    task::{JoinHandle, JoinSet},
};

tokio::task_local! {
    static CURRENT: TaskSet;
}

/// What a task's body gives back: nothing, or a `Result` whose error is a failure.
pub trait TaskOutcome {
    /// The failure to log, if any.
    fn failure(self) -> Option<String>;
}

impl TaskOutcome for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Display> TaskOutcome for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// The tasks of one server. Cheap to clone (one shared set).
#[derive(Clone, Default)]
pub struct TaskSet {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    running: Mutex<Running>,
    /// `true` once shutdown began: [`spawn_loop`] tasks end at their next await.
    stopping: watch::Sender<bool>,
}

#[derive(Default)]
struct Running {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl TaskSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `work` with this set current: what it spawns is owned here.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        CURRENT.scope(self.clone(), work).await
    }

    /// Tasks not yet finished.
    pub fn len(&self) -> usize {
        let mut running = self.running();
        running.reap();
        running.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        let scoped = CURRENT.scope(self.clone(), work);
        let mut running = self.running();
        running.reap();
        let handle = running.set.spawn(scoped);
        running.names.insert(handle.id(), name);
    }

    /// Tells [`spawn_loop`] tasks to stop, waits up to `deadline` for every task to end, then
    /// aborts (and logs) the ones still running. Tasks spawned meanwhile are drained too.
    pub async fn shutdown(&self, deadline: Duration) {
        self.inner.stopping.send_replace(true);
        let until = tokio::time::Instant::now() + deadline;
        loop {
            // Take the set out so no lock is held across an await; tasks spawned meanwhile go
            // into the emptied one and are drained on the next round.
            let mut set = std::mem::take(&mut self.running().set);
            if set.is_empty() {
                return;
            }
            loop {
                match tokio::time::timeout_at(until, set.join_next_with_id()).await {
                    Ok(Some(done)) => {
                        self.running().names.remove(&ended_id(done));
                    }
                    Ok(None) => break,
                    Err(_) => {
                        {
                            let mut running = self.running();
                            let late: Vec<&str> = running.names.values().copied().collect();
                            tracing::warn!(
                                ?deadline,
                                tasks = ?late,
                                "background tasks did not finish in time; aborting them"
                            );
                            running.names.clear();
                            running.set.abort_all();
                        }
                        set.abort_all();
                        while set.join_next().await.is_some() {}
                        return;
                    }
                }
            }
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn stopped(&self) {
        let mut stopping = self.inner.stopping.subscribe();
        let _ = stopping.wait_for(|stop| *stop).await;
    }
}

impl Running {
    /// Forgets tasks that have ended (their failures were logged when they ended).
    fn reap(&mut self) {
        while let Some(done) = self.set.try_join_next_with_id() {
            self.names.remove(&ended_id(done));
        }
    }
}

fn ended_id(done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) -> tokio::task::Id {
    match done {
        Ok((id, ())) => id,
        Err(e) => e.id(),
    }
}

/// `work`, logging and counting a panic or an error as a failure of `name`.
async fn watched<O: TaskOutcome>(name: &'static str, work: impl Future<Output = O>) {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(outcome) => {
            if let Some(error) = outcome.failure() {
                tracing::error!(task = name, %error, "background task failed");
                crate::telemetry::task_failure(name);
            }
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            tracing::error!(task = name, panic = %message, "background task panicked");
            crate::telemetry::task_failure(name);
        }
    }
}

/// A task that ends by itself (a write, a mail, a drain): owned by the current set, which waits
/// for it on shutdown (up to the deadline).
pub fn spawn<O: TaskOutcome + Send + 'static>(
    name: &'static str,
    work: impl Future<Output = O> + Send + 'static,
) {
    let work = watched(name, work);
    match CURRENT.try_with(Clone::clone) {
        Ok(set) => set.add(name, work),
        Err(_) => {
            tokio::spawn(work);
        }
    }
}

/// A task that runs for the server's life (a sweeper, a scheduler, a relay): owned by the
/// current set, and ended at its next await when shutdown begins.
pub fn spawn_loop<O: TaskOutcome + Send + 'static>(
    name: &'static str,
    work: impl Future<Output = O> + Send + 'static,
) {
    match CURRENT.try_with(Clone::clone) {
        Ok(set) => {
            let stop = set.clone();
            set.add(name, async move {
                tokio::select! {
                    () = stop.stopped() => {}
                    () = watched(name, work) => {}
                }
            })
        }
        Err(_) => {
            tokio::spawn(watched(name, work));
        }
    }
}

/// A task whose owner keeps the handle and drains it itself, in its own order on shutdown (the
/// ingest writer, the job workers): logged and counted like the others, in the current set's
/// scope so what it spawns is owned.
pub fn spawn_handle<O: TaskOutcome + Send + 'static>(
    name: &'static str,
    work: impl Future<Output = O> + Send + 'static,
) -> JoinHandle<()> {
    let work = watched(name, work);
    match CURRENT.try_with(Clone::clone) {
        Ok(set) => tokio::spawn(CURRENT.scope(set, work)),
        Err(_) => tokio::spawn(work),
    }
}

/// `work` in the current set's scope, for a future handed to something else to run (a
/// connection, served by the accept loop): what it spawns is owned.
pub fn inherit<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let set = CURRENT.try_with(Clone::clone).ok();
    async move {
        match set {
            Some(set) => CURRENT.scope(set, work).await,
            None => work.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn shutdown_waits_for_a_running_task() {
        let set = TaskSet::new();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        set.scope(async {
            spawn("test", async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                flag.store(true, Ordering::SeqCst);
            });
        })
        .await;
        assert_eq!(set.len(), 1);
        set.shutdown(Duration::from_secs(10)).await;
        assert!(done.load(Ordering::SeqCst), "drained, not dropped");
        assert!(set.is_empty());
    }

    #[tokio::test]
    async fn shutdown_stops_loops_and_aborts_what_outlives_the_deadline() {
        let set = TaskSet::new();
        let (ticks, stuck_finished) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (t, s) = (ticks.clone(), stuck_finished.clone());
        set.scope(async move {
            spawn_loop::<()>("test_loop", async move {
                loop {
                    t.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            spawn("test_stuck", async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                s.store(true, Ordering::SeqCst);
            });
        })
        .await;
        // The loop is running before shutdown begins.
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while !ticks.load(Ordering::SeqCst) {
            assert!(tokio::time::Instant::now() < until, "the loop never ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = tokio::time::Instant::now();
        set.shutdown(Duration::from_millis(300)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            !stuck_finished.load(Ordering::SeqCst),
            "aborted at the deadline"
        );
        assert!(set.is_empty());
    }

    #[tokio::test]
    async fn a_panicking_or_failing_task_is_counted() {
        let name = "test_panics";
        let before = failures(name);
        let set = TaskSet::new();
        set.scope(async {
            spawn::<()>(name, async {
                panic!("on purpose");
            });
            spawn(name, async { Err::<(), _>("an error") });
            spawn(name, async { Ok::<(), String>(()) });
        })
        .await;
        set.shutdown(Duration::from_secs(10)).await;
        assert_eq!(failures(name), before + 2, "{}", crate::telemetry::render());
    }

    #[tokio::test]
    async fn nested_spawns_are_owned_by_the_same_set() {
        let set = TaskSet::new();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        set.scope(async move {
            spawn("test_outer", async move {
                spawn("test_inner", async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    flag.store(true, Ordering::SeqCst);
                });
            });
        })
        .await;
        set.shutdown(Duration::from_secs(10)).await;
        assert!(done.load(Ordering::SeqCst));
    }

    fn failures(task: &str) -> u64 {
        let text = crate::telemetry::render();
        let prefix = format!("si_task_failures_total{{task=\"{task}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse().unwrap())
    }
}
