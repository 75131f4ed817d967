//! The contract every report [`FileStore`] adapter meets, run on the local directory and on the
//! S3 adapter against a real S3-compatible server (versitygw) that the tests start on a loopback
//! port of their own and kill by PID. Test-only.

use super::files::{FileStore, LocalFileStore};
use super::s3_files::{PART_BYTES, S3FileStore};
use crate::config::{Secret, s3::S3Config};
use bytes::Bytes;
use futures::StreamExt;
use std::{
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const NS: &str = "0123456789abcdef01234567_89abcdef0123456789abcdef";
const OTHER_NS: &str = "aaaaaaaaaaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbb";

/// A real S3-compatible server (versitygw's POSIX gateway) on a free loopback port, with one
/// bucket; killed (by its PID) when dropped.
pub struct TestS3 {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

pub const TEST_ACCESS_KEY: &str = "si-test-access";
pub const TEST_SECRET_KEY: &str = "si-test-secret-0123456789";

/// The versitygw binary: `SUPERINSIGHTS_TEST_S3_BIN` (`scripts/test` installs it into Go's bin
/// directory and sets it), else `versitygw` on `PATH`.
pub fn s3_binary() -> PathBuf {
    std::env::var("SUPERINSIGHTS_TEST_S3_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("versitygw"))
}

impl TestS3 {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let bucket = "si-reports".to_string();
        std::fs::create_dir_all(root.join(&bucket)).unwrap();
        std::fs::create_dir_all(dir.path().join("meta")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = s3_binary();
        let child = Command::new(&bin)
            .args(["--access", TEST_ACCESS_KEY, "--secret", TEST_SECRET_KEY])
            .args(["--port", &format!("127.0.0.1:{port}")])
            .arg("posix")
            .arg("--sidecar")
            .arg(dir.path().join("meta"))
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the S3 test server {} ({e}); run scripts/test, or install it with \
                     `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0` and set \
                     SUPERINSIGHTS_TEST_S3_BIN to it",
                    bin.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "S3 test server did not listen");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            root,
            _dir: dir,
        }
    }

    pub fn config(&self, prefix: Option<&str>) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            bucket: self.bucket.clone(),
            region: "us-east-1".into(),
            access_key_id: TEST_ACCESS_KEY.into(),
            secret_access_key: Secret::new(TEST_SECRET_KEY),
            path_style: true,
            prefix: prefix.map(str::to_string),
        }
    }

    /// Where the server keeps `key` of the bucket on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(&self.bucket).join(key)
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn write_scratch(store: &dyn FileStore, name: &str, bytes: &[u8]) -> PathBuf {
    let scratch = store.scratch_dir();
    tokio::fs::create_dir_all(&scratch).await.unwrap();
    let path = scratch.join(name);
    tokio::fs::write(&path, bytes).await.unwrap();
    path
}

async fn read_back(store: &dyn FileStore, key: &str) -> Option<(u64, Vec<u8>, usize)> {
    let file = store.open(key).await.unwrap()?;
    let chunks: Vec<Bytes> = file.chunks.map(|c| c.unwrap()).collect().await;
    let largest = chunks.iter().map(Bytes::len).max().unwrap_or(0);
    Some((file.size, chunks.concat(), largest))
}

/// Bytes no two parts of which are alike (a misplaced part shows).
fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The behaviours every adapter shares.
pub async fn contract(store: &dyn FileStore) {
    // A small file: stored, its scratch copy consumed, read back whole.
    let key = format!("{NS}/r-1.csv");
    let src = write_scratch(store, "a.part", b"metric,value\nviews,3\n").await;
    assert_eq!(store.put_file(&key, &src).await.unwrap(), 21);
    assert!(!src.exists(), "the scratch file is consumed");
    let (size, bytes, _) = read_back(store, &key).await.unwrap();
    assert_eq!(
        (size, bytes.as_slice()),
        (21, &b"metric,value\nviews,3\n"[..])
    );

    // Storing again under the same key replaces the file.
    let src = write_scratch(store, "b.part", b"second").await;
    assert_eq!(store.put_file(&key, &src).await.unwrap(), 6);
    assert_eq!(read_back(store, &key).await.unwrap().1, b"second");

    // An empty file is a file.
    let empty = format!("{NS}/empty.csv");
    let src = write_scratch(store, "c.part", b"").await;
    assert_eq!(store.put_file(&empty, &src).await.unwrap(), 0);
    assert_eq!(read_back(store, &empty).await.unwrap().0, 0);

    // A file larger than one upload part (a multipart upload on S3) comes back byte for byte,
    // in chunks far smaller than the file.
    let big = pattern(PART_BYTES * 2 + 12_345);
    let big_key = format!("{OTHER_NS}/raw-2.csv");
    let src = write_scratch(store, "d.part", &big).await;
    assert_eq!(
        store.put_file(&big_key, &src).await.unwrap(),
        big.len() as u64
    );
    let (size, bytes, largest) = read_back(store, &big_key).await.unwrap();
    assert_eq!(size, big.len() as u64);
    assert!(bytes == big, "the large file differs after the round trip");
    assert!(
        largest < big.len() / 2,
        "streamed, not read whole ({largest})"
    );

    // Namespaces do not see each other; a missing file is None.
    assert!(
        store
            .open(&format!("{OTHER_NS}/r-1.csv"))
            .await
            .unwrap()
            .is_none()
    );

    // Removal, twice (a missing file is not an error).
    for k in [&key, &empty, &big_key] {
        store.remove(k).await.unwrap();
        assert!(store.open(k).await.unwrap().is_none(), "{k} removed");
        store.remove(k).await.unwrap();
    }

    // Keys outside the namespace scheme are refused before any IO.
    let src = write_scratch(store, "e.part", b"x").await;
    for bad in ["../etc/passwd", "x/r.pdf", &format!("{NS}/../r.pdf")] {
        let refused = |e: io::Error| e.kind() == io::ErrorKind::InvalidInput;
        assert!(store.put_file(bad, &src).await.is_err_and(refused), "{bad}");
        assert!(store.open(bad).await.is_err_and(refused), "{bad}");
        assert!(store.remove(bad).await.is_err_and(refused), "{bad}");
    }
    assert!(!store.describe().is_empty());
}

fn local(dir: &Path) -> LocalFileStore {
    LocalFileStore::new(dir.join("reports"))
}

#[tokio::test]
async fn local_directory_meets_the_file_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&local(dir.path())).await;
}

#[tokio::test]
async fn s3_bucket_meets_the_file_store_contract() {
    let s3 = TestS3::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = S3FileStore::new(&s3.config(None), dir.path().join(".tmp")).unwrap();
    contract(&store).await;
    // With a prefix, keys land under it in the bucket.
    let store = S3FileStore::new(&s3.config(Some("si/reports")), dir.path().join(".tmp")).unwrap();
    let key = format!("{NS}/p.json");
    let src = write_scratch(&store, "p.part", b"{}").await;
    store.put_file(&key, &src).await.unwrap();
    assert!(s3.object_path(&format!("si/reports/{key}")).exists());
    store.remove(&key).await.unwrap();
    assert!(!s3.object_path(&format!("si/reports/{key}")).exists());
}

#[tokio::test]
async fn s3_errors_surface_as_io_errors_and_wrong_credentials_are_refused() {
    let s3 = TestS3::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = s3.config(None);
    config.secret_access_key = Secret::new("not-the-secret");
    let store = S3FileStore::new(&config, dir.path().join(".tmp")).unwrap();
    let src = write_scratch(&store, "x.part", b"x").await;
    let err = store
        .put_file(&format!("{NS}/x.csv"), &src)
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert!(
        src.exists(),
        "a failed upload keeps the scratch file for the caller"
    );
    // A server that is gone: an error within the retry budget, never a hang.
    let good = S3FileStore::new(&s3.config(None), dir.path().join(".tmp")).unwrap();
    drop(s3);
    let started = Instant::now();
    assert!(good.put_file(&format!("{NS}/x.csv"), &src).await.is_err());
    assert!(good.open(&format!("{NS}/x.csv")).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
}
