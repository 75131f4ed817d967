//! The S3-compatible adapter of the report [`FileStore`] (`REPORTS_S3_*`), so that several
//! instances share report files: a file is rendered into the local scratch directory, then
//! uploaded — in one request up to [`PART_BYTES`], as a multipart upload of such parts above —
//! and read back as a stream. Memory stays bounded by a few parts whatever the file's size.
//! Signing, retries and the XML of S3 are `object_store`'s; this module only maps keys and
//! errors, and must not know about reports beyond their keys.

use super::files::{FileStore, OpenFile, valid_key};
use crate::config::s3::S3Config;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
    aws::{AmazonS3, AmazonS3Builder},
    path::Path as ObjectPath,
};
use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};
use tokio::io::AsyncReadExt;

/// Size of one uploaded part (S3's minimum for all but the last part is 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 2;

/// Report files in one bucket (under an optional prefix).
pub struct S3FileStore {
    store: AmazonS3,
    prefix: Option<String>,
    scratch: PathBuf,
    describe: String,
}

impl S3FileStore {
    /// The adapter for `config`; files being written go to `scratch` (local). No request is
    /// made here: a bucket that is unreachable shows on the first report stored.
    pub fn new(config: &S3Config, scratch: PathBuf) -> io::Result<Self> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            // A whole request, a streamed download included: generous for big raw exports.
            .with_timeout(Duration::from_secs(600))
            .with_allow_http(true);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(config.secret_access_key.expose())
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(retry)
            .with_client_options(client);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder.build().map_err(io::Error::other)?;
        let describe = format!(
            "S3 bucket {} at {} ({}{})",
            config.bucket,
            config.endpoint.as_deref().unwrap_or("AWS"),
            if config.path_style {
                "path-style"
            } else {
                "virtual-hosted"
            },
            config
                .prefix
                .as_deref()
                .map(|p| format!(", prefix {p}/"))
                .unwrap_or_default()
        );
        Ok(Self {
            store,
            prefix: config.prefix.clone(),
            scratch,
            describe,
        })
    }

    fn path_of(&self, key: &str) -> io::Result<ObjectPath> {
        if !valid_key(key) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid report file key {key:?}"),
            ));
        }
        Ok(ObjectPath::from(match &self.prefix {
            Some(p) => format!("{p}/{key}"),
            None => key.to_string(),
        }))
    }
}

fn s3_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        other => io::Error::other(other),
    }
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the file).
async fn fill(file: &mut tokio::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[async_trait]
impl FileStore for S3FileStore {
    fn scratch_dir(&self) -> PathBuf {
        self.scratch.clone()
    }

    async fn put_file(&self, key: &str, source: &Path) -> io::Result<u64> {
        let path = self.path_of(key)?;
        let mut file = tokio::fs::File::open(source).await?;
        let size = file.metadata().await?.len();
        let mut buf = vec![0u8; PART_BYTES];
        let first = fill(&mut file, &mut buf).await?;
        if (first as u64) == size && first < PART_BYTES {
            buf.truncate(first);
            self.store
                .put(&path, PutPayload::from(buf))
                .await
                .map_err(s3_error)?;
        } else {
            let upload = self.store.put_multipart(&path).await.map_err(s3_error)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut n = first;
            let sent: io::Result<()> = async {
                while n > 0 {
                    // At most PARTS_IN_FLIGHT parts buffered, plus the one being read.
                    writer
                        .wait_for_capacity(PARTS_IN_FLIGHT)
                        .await
                        .map_err(s3_error)?;
                    writer.write(&buf[..n]);
                    n = fill(&mut file, &mut buf).await?;
                }
                Ok(())
            }
            .await;
            match sent {
                Ok(()) => {
                    writer.finish().await.map_err(s3_error)?;
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
        let _ = tokio::fs::remove_file(source).await;
        Ok(size)
    }

    async fn open(&self, key: &str) -> io::Result<Option<OpenFile>> {
        let path = self.path_of(key)?;
        let got = match self.store.get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(s3_error(e)),
        };
        let size = got.meta.size;
        let chunks = got.into_stream().map_err(s3_error).boxed();
        Ok(Some(OpenFile { size, chunks }))
    }

    async fn remove(&self, key: &str) -> io::Result<()> {
        match self.store.delete(&self.path_of(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_error(e)),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
