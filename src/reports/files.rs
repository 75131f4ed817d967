//! The file-store port report files go to, and its local-disk adapter under `REPORTS_DIR`
//! (default `DATA_DIR/reports`). Keys are `<orgId>_<projectId>/<name>`; the namespace part is
//! what downloads check. The S3-compatible adapter is `reports::s3_files`; both meet the contract
//! in `reports::files_contract`.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::{
    io,
    path::{Path, PathBuf},
};

/// A file being read: its size and its bytes as a stream of chunks.
pub struct OpenFile {
    pub size: u64,
    pub chunks: BoxStream<'static, io::Result<Bytes>>,
}

/// Where finished report files live.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// A directory for a file being written (on the same file system as the store when it is
    /// local, so that [`put_file`](Self::put_file) can rename).
    fn scratch_dir(&self) -> PathBuf;
    /// Stores the finished file at `source` (consumed) under `key`; returns its size in bytes.
    async fn put_file(&self, key: &str, source: &Path) -> io::Result<u64>;
    /// The file under `key`, or `None` when there is none.
    async fn open(&self, key: &str) -> io::Result<Option<OpenFile>>;
    /// Removes the file under `key`; a missing file is not an error.
    async fn remove(&self, key: &str) -> io::Result<()>;
    /// For the startup log.
    fn describe(&self) -> String;
}

/// Whether `key` is one of ours: `<24 hex>_<24 hex>/<[A-Za-z0-9_.-]+>`, no `..`.
pub fn valid_key(key: &str) -> bool {
    let Some((ns, name)) = key.split_once('/') else {
        return false;
    };
    let hex = |s: &str| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let ns_ok = ns.split_once('_').is_some_and(|(a, b)| hex(a) && hex(b));
    ns_ok
        && !name.is_empty()
        && name.len() <= 200
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Files under a local directory (private: `0700` directories, `0600` files).
pub struct LocalFileStore {
    root: PathBuf,
}

impl LocalFileStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path_of(&self, key: &str) -> io::Result<PathBuf> {
        if !valid_key(key) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid report file key {key:?}"),
            ));
        }
        Ok(self.root.join(key))
    }
}

async fn private_dir(dir: &Path) -> io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await?;
    }
    Ok(())
}

#[async_trait]
impl FileStore for LocalFileStore {
    fn scratch_dir(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    async fn put_file(&self, key: &str, source: &Path) -> io::Result<u64> {
        let path = self.path_of(key)?;
        private_dir(&self.root).await?;
        if let Some(parent) = path.parent() {
            private_dir(parent).await?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(source, std::fs::Permissions::from_mode(0o600)).await?;
        }
        if tokio::fs::rename(source, &path).await.is_err() {
            // Another file system: copy, then drop the source.
            tokio::fs::copy(source, &path).await?;
            let _ = tokio::fs::remove_file(source).await;
        }
        Ok(tokio::fs::metadata(&path).await?.len())
    }

    async fn open(&self, key: &str) -> io::Result<Option<OpenFile>> {
        let path = self.path_of(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata().await?.len();
        let chunks = futures::stream::unfold(file, |mut file| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        });
        Ok(Some(OpenFile {
            size,
            chunks: Box::pin(chunks),
        }))
    }

    async fn remove(&self, key: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path_of(key)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "0123456789abcdef01234567_89abcdef0123456789abcdef";

    #[test]
    fn keys_are_namespaced_and_cannot_escape() {
        assert!(valid_key(&format!("{NS}/r-1.pdf")));
        for bad in ["x/r.pdf", &format!("{NS}/../x"), &format!("{NS}/a/b"), NS] {
            assert!(!valid_key(bad), "{bad}");
        }
    }
}
