//! The disk spool: where accepted batches go when the store cannot take them, and where they are
//! replayed from once it can. One NDJSON line per batch, fsynced before the client hears 202.
//!
//! Every append and every drain holds an exclusive `flock` on `<spool>.lock`, so several server
//! processes can share one spool and nothing appended during a drain is lost (SuperInsights 1.x
//! could lose those). Replays use `EventWriter::write_once`, so a crash mid-drain never
//! duplicates a batch. A line that fails [`MAX_ATTEMPTS`] times moves to `<spool>.dead`
//! (kept, never deleted) instead of being dropped.

use crate::domain::model::WriteBatch;
use crate::store::EventWriter;
use serde::{Deserialize, Serialize};
use std::{
    fs::{self, File},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

/// Replay attempts before a line is moved to the dead-letter file.
pub const MAX_ATTEMPTS: u32 = 5;
/// Lines refused as "unavailable" in a row after which a drain stops (the store is away).
const REFUSALS_BEFORE_STOPPING: usize = 3;

#[derive(Serialize, Deserialize)]
struct SpoolLine {
    #[serde(flatten)]
    batch: WriteBatch,
    #[serde(default)]
    attempts: u32,
}

/// What one drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Batches written to the store (or found already written).
    pub drained: usize,
    /// Documents in the drained batches.
    pub drained_docs: usize,
    /// Lines left in the spool for a later drain.
    pub requeued: usize,
    /// Lines moved to the dead-letter file (poison or unreadable).
    pub dead: usize,
}

#[derive(Clone, Debug)]
pub struct Spool {
    path: PathBuf,
}

impl Spool {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    /// The file poison lines are moved to.
    pub fn dead_letter_path(&self) -> PathBuf {
        self.sibling(".dead")
    }

    /// Blocks until this process holds the spool lock; released when the file is dropped.
    fn lock(&self) -> io::Result<File> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::private_dir(dir)?;
        }
        let lock = crate::fsutil::private_file()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.sibling(".lock"))?;
        lock.lock()?;
        Ok(lock)
    }

    /// Bytes waiting in the spool (cheap; no lock).
    pub fn pending_bytes(&self) -> u64 {
        fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// True when the spool holds anything (cheap; no lock).
    pub fn has_pending(&self) -> bool {
        fs::metadata(&self.path)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    }

    /// Appends the batches durably (fsync) before returning.
    pub async fn append(&self, batches: Vec<WriteBatch>) -> io::Result<()> {
        let spool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            for batch in batches {
                text.push_str(&serde_json::to_string(&SpoolLine { batch, attempts: 0 })?);
                text.push('\n');
            }
            let _lock = spool.lock()?;
            append_durably(&spool.path, &text)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Replays every spooled batch into `writer`. Stops early (keeping the rest) when the store
    /// is unavailable again.
    pub async fn drain(&self, writer: &dyn EventWriter) -> io::Result<DrainReport> {
        let spool = self.clone();
        let (lock, text) = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let lock = spool.lock()?;
            let text = match fs::read_to_string(&spool.path) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e),
            };
            Ok((lock, text))
        })
        .await
        .map_err(io::Error::other)??;

        let mut report = DrainReport::default();
        let mut keep = String::new();
        let mut dead = String::new();
        // A line the store refused as "unavailable" is only a suspect. If any line of this
        // drain is stored, the store takes writes and refuses those batches themselves (a server
        // that drops the connection on one document): each counts a failed attempt. If none is,
        // the store is away and no attempt counts. After a few refusals in a row the drain
        // stops; the suspects then go to the end of the spool, so the next drain starts with
        // the others and a run of bad batches never holds up good ones for good.
        let mut suspects: Vec<(SpoolLine, String)> = Vec::new();
        let (mut stored_any, mut refused_in_a_row) = (false, 0);
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        for line in lines.by_ref() {
            let Ok(entry) = serde_json::from_str::<SpoolLine>(line) else {
                tracing::error!(line = %truncate(line), "unreadable spool line moved to the dead-letter file");
                dead.push_str(line);
                dead.push('\n');
                report.dead += 1;
                continue;
            };
            match writer.write_once(&entry.batch).await {
                Ok(_) => {
                    report.drained += 1;
                    report.drained_docs += entry.batch.docs.len();
                    stored_any = true;
                    refused_in_a_row = 0;
                }
                Err(e) if e.is_unavailable() => {
                    suspects.push((entry, e.to_string()));
                    refused_in_a_row += 1;
                    if refused_in_a_row >= REFUSALS_BEFORE_STOPPING {
                        break;
                    }
                }
                Err(e) => failed(entry, &e.to_string(), &mut keep, &mut dead, &mut report)?,
            }
        }
        for line in lines {
            keep.push_str(line);
            keep.push('\n');
            report.requeued += 1;
        }
        for (entry, error) in suspects {
            if stored_any {
                failed(entry, &error, &mut keep, &mut dead, &mut report)?;
            } else {
                keep_line(&entry, &mut keep, &mut report)?;
            }
        }

        let spool = self.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            if !dead.is_empty() {
                append_durably(&spool.dead_letter_path(), &dead)?;
            }
            if keep.is_empty() {
                match fs::remove_file(&spool.path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            } else {
                let tmp = spool.sibling(".tmp");
                let mut f = crate::fsutil::private_file()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?;
                f.write_all(keep.as_bytes())?;
                f.sync_all()?;
                fs::rename(&tmp, &spool.path)?;
            }
            sync_dir(&spool.path);
            drop(lock);
            Ok(())
        })
        .await
        .map_err(io::Error::other)??;
        Ok(report)
    }
}

/// Keeps a line for a later drain, as it is.
fn keep_line(entry: &SpoolLine, keep: &mut String, report: &mut DrainReport) -> io::Result<()> {
    keep.push_str(&serde_json::to_string(entry).map_err(io::Error::other)?);
    keep.push('\n');
    report.requeued += 1;
    Ok(())
}

/// Counts a failed attempt of a batch the store refused: kept for a later drain, or moved to
/// the dead-letter file after [`MAX_ATTEMPTS`].
fn failed(
    mut entry: SpoolLine,
    error: &str,
    keep: &mut String,
    dead: &mut String,
    report: &mut DrainReport,
) -> io::Result<()> {
    entry.attempts += 1;
    let text = serde_json::to_string(&entry).map_err(io::Error::other)?;
    if entry.attempts >= MAX_ATTEMPTS {
        tracing::error!(batch = %entry.batch.batch_id, error, "spooled batch failed {MAX_ATTEMPTS} times; moved to the dead-letter file");
        dead.push_str(&text);
        dead.push('\n');
        report.dead += 1;
    } else {
        tracing::warn!(batch = %entry.batch.batch_id, attempts = entry.attempts, error, "spooled batch failed; will retry");
        keep.push_str(&text);
        keep.push('\n');
        report.requeued += 1;
    }
    Ok(())
}

/// Appends `text` (whole lines) and syncs, all or nothing: a failed write or sync (a full disk,
/// an I/O error) truncates the file back to where it was, so no partial line is left for the
/// next append to run into. A file whose last line is already torn (a crash mid-append before
/// this rule, or a copy cut short) gets a newline first, so the new lines stay whole.
fn append_durably(path: &Path, text: &str) -> io::Result<()> {
    let mut f = crate::fsutil::private_file()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let start = f.metadata()?.len();
    let torn = start > 0 && {
        let mut last = [0u8; 1];
        f.read_exact_at(&mut last, start - 1)?;
        last[0] != b'\n'
    };
    let written = (|| {
        if torn {
            f.write_all(b"\n")?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_data()
    })();
    if let Err(e) = written {
        // Best effort: a failed truncate leaves a torn line, which the next append fences off
        // with a newline and the drain moves to the dead-letter file; it was never acknowledged.
        if f.set_len(start).and_then(|()| f.sync_data()).is_err() {
            tracing::error!(path = %path.display(), "could not cut a failed spool append back");
        }
        return Err(e);
    }
    Ok(())
}

/// Makes a rename or file creation durable.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(200).map(|(i, _)| i).unwrap_or(s.len());
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ids::DocId, model::Docs};
    use crate::store::{StoreError, StoreResult, contract};
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// A writer that records batches and fails as told: a store stand-in for spool logic only.
    #[derive(Default)]
    struct Recorder {
        stored: Mutex<Vec<DocId>>,
        fail_with: Mutex<Option<StoreError>>,
    }

    #[async_trait]
    impl EventWriter for Recorder {
        async fn write(&self, _: &[WriteBatch]) -> StoreResult<()> {
            unreachable!("the spool only replays")
        }
        async fn write_once(&self, batch: &WriteBatch) -> StoreResult<bool> {
            if let Some(e) = self.fail_with.lock().unwrap().clone() {
                return Err(e);
            }
            let mut stored = self.stored.lock().unwrap();
            if stored.contains(&batch.batch_id) {
                return Ok(false);
            }
            stored.push(batch.batch_id);
            Ok(true)
        }
        async fn write_once_many(&self, _: &[WriteBatch]) -> StoreResult<Vec<bool>> {
            unreachable!("the spool replays one batch at a time")
        }
    }

    fn batch(n: usize) -> WriteBatch {
        let docs = (0..n).map(|i| contract::event("e", i as i64)).collect();
        contract::batch(DocId::new(), Docs::Events(docs))
    }

    #[tokio::test]
    async fn lines_round_trip_and_a_full_drain_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("s.ndjson"));
        let (a, b) = (batch(2), batch(3));
        spool.append(vec![a.clone()]).await.unwrap();
        spool.append(vec![b.clone()]).await.unwrap();
        let text = fs::read_to_string(spool.path()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.contains("\"channel\":\"events\"") && text.contains("\"attempts\":0"),
            "{text}"
        );

        let w = Recorder::default();
        let r = spool.drain(&w).await.unwrap();
        assert_eq!(
            r,
            DrainReport {
                drained: 2,
                drained_docs: 5,
                requeued: 0,
                dead: 0
            }
        );
        assert_eq!(*w.stored.lock().unwrap(), vec![a.batch_id, b.batch_id]);
        assert!(!spool.path().exists());
    }

    #[tokio::test]
    async fn unavailable_store_keeps_everything_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("s.ndjson"));
        spool
            .append(vec![batch(1), batch(1), batch(1)])
            .await
            .unwrap();
        let w = Recorder::default();
        *w.fail_with.lock().unwrap() = Some(StoreError::unavailable("down".into()));
        let r = spool.drain(&w).await.unwrap();
        assert_eq!((r.drained, r.requeued, r.dead), (0, 3, 0));
        assert!(
            fs::read_to_string(spool.path())
                .unwrap()
                .contains("\"attempts\":0"),
            "outages do not count as attempts"
        );
        *w.fail_with.lock().unwrap() = None;
        assert_eq!(spool.drain(&w).await.unwrap().drained, 3);
    }

    #[tokio::test]
    async fn poison_lines_go_to_the_dead_letter_file_after_five_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("s.ndjson"));
        let poison = batch(1);
        spool.append(vec![poison.clone()]).await.unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(spool.path())
            .unwrap()
            .write_all(b"{corrupt\n")
            .unwrap();
        let w = Recorder::default();
        *w.fail_with.lock().unwrap() = Some(StoreError::other("bad doc".into()));
        for attempt in 1..MAX_ATTEMPTS {
            let r = spool.drain(&w).await.unwrap();
            assert_eq!(r.requeued, 1, "attempt {attempt}");
            assert!(
                fs::read_to_string(spool.path())
                    .unwrap()
                    .contains(&format!("\"attempts\":{attempt}"))
            );
        }
        let r = spool.drain(&w).await.unwrap();
        assert_eq!((r.requeued, r.dead), (0, 1));
        assert!(!spool.path().exists());
        let dead = fs::read_to_string(spool.dead_letter_path()).unwrap();
        assert_eq!(
            dead.lines().count(),
            2,
            "the corrupt line and the poison batch are both kept: {dead}"
        );
        assert!(dead.contains(&poison.batch_id.to_hex()));
    }

    /// Refuses some batches as "unavailable" (as a server that drops the connection on one bad
    /// document does) and stores the others.
    #[derive(Default)]
    struct RefusesSome {
        bad: Mutex<Vec<DocId>>,
        stored: Mutex<Vec<DocId>>,
    }

    #[async_trait]
    impl EventWriter for RefusesSome {
        async fn write(&self, _: &[WriteBatch]) -> StoreResult<()> {
            unreachable!("the spool only replays")
        }
        async fn write_once(&self, batch: &WriteBatch) -> StoreResult<bool> {
            if self.bad.lock().unwrap().contains(&batch.batch_id) {
                return Err(StoreError::unavailable("connection closed".into()));
            }
            self.stored.lock().unwrap().push(batch.batch_id);
            Ok(true)
        }
        async fn write_once_many(&self, _: &[WriteBatch]) -> StoreResult<Vec<bool>> {
            unreachable!("the spool replays one batch at a time")
        }
    }

    #[tokio::test]
    async fn one_batch_the_store_keeps_refusing_does_not_hold_up_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("s.ndjson"));
        let (bad, good) = (batch(1), batch(2));
        spool.append(vec![bad.clone(), good.clone()]).await.unwrap();
        let w = RefusesSome::default();
        w.bad.lock().unwrap().push(bad.batch_id);
        let first = spool.drain(&w).await.unwrap();
        assert_eq!((first.drained, first.requeued, first.dead), (1, 1, 0));
        assert_eq!(
            *w.stored.lock().unwrap(),
            vec![good.batch_id],
            "the rest got through"
        );
        // Alone in the spool it proves nothing: kept, no attempt counted.
        assert_eq!(spool.drain(&w).await.unwrap().requeued, 1);
        for _ in 1..MAX_ATTEMPTS {
            spool.append(vec![batch(1)]).await.unwrap();
            spool.drain(&w).await.unwrap();
        }
        assert!(
            fs::read_to_string(spool.dead_letter_path())
                .unwrap()
                .contains(&bad.batch_id.to_hex()),
            "after {MAX_ATTEMPTS} proven refusals it is kept in the dead-letter file"
        );
        assert_eq!(w.stored.lock().unwrap().len(), MAX_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn bad_batches_side_by_side_do_not_hold_up_the_rest_either() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("s.ndjson"));
        let w = RefusesSome::default();
        let bad: Vec<WriteBatch> = (0..REFUSALS_BEFORE_STOPPING + 1)
            .map(|_| batch(1))
            .collect();
        w.bad.lock().unwrap().extend(bad.iter().map(|b| b.batch_id));
        let mut lines = bad.clone();
        lines.push(batch(2));
        spool.append(lines).await.unwrap();
        // The first drain stops after the refusals in a row and moves them to the end, so the
        // next one starts with the good batch; every drain that stores something proves the
        // store takes writes, and counts an attempt for each batch it refused.
        let first = spool.drain(&w).await.unwrap();
        assert_eq!(
            (first.drained, first.dead),
            (0, 0),
            "an outage so far: nothing counted"
        );
        let second = spool.drain(&w).await.unwrap();
        assert_eq!(second.drained, 1, "the good batch is not held up");
        let mut drains = 2;
        while !fs::read_to_string(spool.dead_letter_path())
            .map(|d| bad.iter().all(|b| d.contains(&b.batch_id.to_hex())))
            .unwrap_or(false)
        {
            // Traffic goes on: new good batches keep proving the store takes writes.
            spool.append(vec![batch(1)]).await.unwrap();
            spool.drain(&w).await.unwrap();
            drains += 1;
            assert!(drains < 30, "every bad batch reaches the dead-letter file");
        }
        let good = w.stored.lock().unwrap().len();
        assert_eq!(good, drains - 1, "every good batch was stored");
        assert!(!spool.has_pending() || spool.drain(&w).await.unwrap().dead == 0);
    }

    #[tokio::test]
    async fn an_append_after_a_torn_line_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("s.ndjson"));
        let before = batch(1);
        spool.append(vec![before.clone()]).await.unwrap();
        // A crash cut the next append short: half a line, no newline.
        let torn = serde_json::to_string(&SpoolLine {
            batch: batch(3),
            attempts: 0,
        })
        .unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(spool.path())
            .unwrap()
            .write_all(&torn.as_bytes()[..torn.len() / 2])
            .unwrap();
        let after = batch(2);
        spool.append(vec![after.clone()]).await.unwrap();

        let w = Recorder::default();
        let r = spool.drain(&w).await.unwrap();
        assert_eq!((r.drained, r.drained_docs, r.dead), (2, 3, 1));
        assert_eq!(
            *w.stored.lock().unwrap(),
            vec![before.batch_id, after.batch_id],
            "the batch appended after the torn line is replayed intact"
        );
        let dead = fs::read_to_string(spool.dead_letter_path()).unwrap();
        assert_eq!(dead.trim_end(), &torn[..torn.len() / 2]);
    }

    #[tokio::test]
    async fn appends_during_a_drain_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("s.ndjson"));
        spool
            .append((0..50).map(|_| batch(1)).collect())
            .await
            .unwrap();
        let w = std::sync::Arc::new(Recorder::default());
        let (s2, w2) = (spool.clone(), w.clone());
        let drain = tokio::spawn(async move { s2.drain(&*w2).await.unwrap() });
        let mut appended = 0;
        for _ in 0..20 {
            spool.append(vec![batch(1)]).await.unwrap();
            appended += 1;
        }
        let first = drain.await.unwrap();
        let second = spool.drain(&*w).await.unwrap();
        assert_eq!(first.drained + second.drained, 50 + appended);
        assert_eq!(w.stored.lock().unwrap().len(), 70);
    }
}
