//! The connection layer under the router: the accept loop with its connection cap (and a few
//! reserved slots that may only ask `/healthz` and `/readyz`), per-connection header, idle and
//! request-body deadlines, WebSocket upgrades, and the graceful drain (finish in-flight requests,
//! close idle connections). It knows the health paths and nothing else of the routes; what a
//! request means is the router's business.

use crate::{config::ServerConfig, error::AppError};
use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Request, Response},
    response::IntoResponse,
};
use futures::future::BoxFuture;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, watch},
    time::{Instant, Sleep},
};
use tower::ServiceExt;

/// Connections at most when `HTTP_MAX_CONNECTIONS` is unset (lowered to fit the open-file limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// File descriptors kept for everything but client connections: the listener, the SQLite file
/// with its WAL and shared memory, the spool, Redis and MongoDB connections, logs, the GeoIP file.
const OTHER_FILES: u64 = 128;

/// The only paths a connection over the cap (on a reserved slot) may ask for.
const HEALTH_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The effective timeouts and caps, decided once at startup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub reserved_connections: usize,
}

impl Limits {
    /// Raises the open-file soft limit to the hard limit (Unix) and sizes the connection cap to
    /// fit it unless `HTTP_MAX_CONNECTIONS` says otherwise. Logs one line with the result.
    pub fn from_config(config: &ServerConfig) -> Self {
        let open_files = raise_open_file_limit();
        let limits = Self {
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: connection_cap(
                config.max_connections,
                config.reserved_connections,
                open_files,
            ),
            reserved_connections: config.reserved_connections,
        };
        tracing::info!(
            open_files,
            "connections: at most {} (+{} for health checks); headers {} ms, body {} ms, idle {} ms",
            limits.max_connections,
            limits.reserved_connections,
            limits.header_timeout.as_millis(),
            limits.body_timeout.as_millis(),
            limits.idle_timeout.as_millis(),
        );
        limits
    }
}

/// Sets the soft `RLIMIT_NOFILE` to the hard limit; answers the soft limit now in force, `None`
/// where it cannot be known.
fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(soft) => Some(soft),
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap: the configured one (kept even above the file budget, with a warning:
/// accepting then fails with `EMFILE` now and then, which the loop survives), else the default
/// lowered to what the open-file limit leaves after other files and the reserved slots.
fn connection_cap(configured: Option<usize>, reserved: usize, open_files: Option<u64>) -> usize {
    let budget = open_files.map(|limit| {
        limit
            .saturating_sub(OTHER_FILES + reserved as u64)
            .clamp(1, usize::MAX as u64) as usize
    });
    match (configured, budget) {
        (Some(max), Some(budget)) if max > budget => {
            tracing::warn!(
                max,
                budget,
                "HTTP_MAX_CONNECTIONS is above what the open-file limit leaves for connections"
            );
            max
        }
        (Some(max), _) => max,
        (None, Some(budget)) => DEFAULT_MAX_CONNECTIONS.min(budget),
        (None, None) => DEFAULT_MAX_CONNECTIONS,
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets every
/// connection finish its in-flight requests (idle ones close at once) and returns when all have
/// ended. Upgraded connections (WebSockets) are no longer counted here: their owner closes them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(limits.reserved_connections));
    // `stop` tells connections to drain; `open` counts them (one receiver each).
    let (stop, _) = watch::channel(false);
    let (open, open_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_refusal_logged: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(permit) => Slot::Full(permit),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(permit) => Slot::HealthOnly(permit),
                Err(_) => {
                    // Closing at once keeps the backlog moving and the file count bounded.
                    drop(stream);
                    if last_refusal_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        last_refusal_logged = Some(Instant::now());
                        tracing::warn!(
                            max = limits.max_connections,
                            "connection limit reached: refusing connections"
                        );
                    }
                    continue;
                }
            },
        };
        let connection = ConnectionTask {
            router: router.clone(),
            peer,
            limits,
            slot,
            stop: stop.subscribe(),
            _open: open_rx.clone(),
        };
        crate::tasks::spawn_handle("http_connection", connection.run(stream));
    }
    drop(listener);
    drop(open_rx);
    stop.send_replace(true);
    open.closed().await;
    Ok(())
}

/// An accept error: per-connection ones are ignored; anything else (e.g. `EMFILE`, out of file
/// descriptors) is logged and retried shortly, never fatal.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The connection's place under the cap, released when its socket closes (for a WebSocket: when
/// the WebSocket ends).
enum Slot {
    Full(#[allow(dead_code)] OwnedSemaphorePermit),
    /// Over the cap, on a reserved slot: health checks only, one request, no keep-alive.
    HealthOnly(#[allow(dead_code)] OwnedSemaphorePermit),
}

struct ConnectionTask {
    router: Router,
    peer: SocketAddr,
    limits: Limits,
    slot: Slot,
    stop: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
}

impl ConnectionTask {
    async fn run(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let health_only = matches!(self.slot, Slot::HealthOnly(_));
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(TrackedIo {
            inner: stream,
            activity: activity.clone(),
            _slot: self.slot,
        });
        let service = ConnectionService {
            router: self.router,
            peer: self.peer,
            activity: activity.clone(),
            body_timeout: self.limits.body_timeout,
            health_only,
        };
        // HTTP/1.1 only, as the server always was (axum's `http2` feature is off).
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(!health_only)
            .serve_connection(io, service)
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let mut expired = std::pin::pin!(activity.expired(self.limits));
        let mut draining = *self.stop.borrow_and_update();
        if draining {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, peer = %self.peer, "connection ended with an error");
                    }
                    break;
                }
                why = &mut expired => {
                    // Dropping the connection closes the socket: nothing is in flight.
                    tracing::debug!(peer = %self.peer, "connection closed: {why}");
                    break;
                }
                _ = self.stop.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Why a connection was closed by its deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    /// A request's headers did not arrive in time (from accept, or from a keep-alive
    /// connection's first byte).
    Headers,
    /// A keep-alive connection waited too long for its next request.
    Idle,
}

impl std::fmt::Display for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expiry::Headers => "request headers not received in time",
            Expiry::Idle => "idle keep-alive timeout",
        })
    }
}

/// What one connection is doing, as far as its deadlines care: requests in flight (from their
/// headers until their response body is finished or dropped), and while none is, since when it
/// has been waiting and whether the next request has begun to arrive.
struct Activity {
    phase: Mutex<Phase>,
    /// Set while waiting for a request and no byte of it has come yet: the read path then takes
    /// the lock once, to note the first byte.
    awaiting_first_byte: AtomicBool,
    changed: Notify,
}

#[derive(Clone, Copy, Debug)]
struct Phase {
    in_flight: usize,
    /// Requests answered so far (0: a new connection, whose header deadline counts from accept).
    answered: u64,
    waiting_since: Instant,
    first_byte: Option<Instant>,
}

impl Phase {
    /// The next deadline and what it is for; `None` while a request is in flight.
    fn deadline(&self, limits: Limits) -> Option<(Instant, Expiry)> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match (self.answered, self.first_byte) {
            (0, _) => (self.waiting_since + limits.header_timeout, Expiry::Headers),
            (_, Some(first)) => (first + limits.header_timeout, Expiry::Headers),
            (_, None) => (self.waiting_since + limits.idle_timeout, Expiry::Idle),
        })
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase {
                in_flight: 0,
                answered: 0,
                waiting_since: Instant::now(),
                first_byte: None,
            }),
            awaiting_first_byte: AtomicBool::new(true),
            changed: Notify::new(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut Phase)) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut phase);
        self.awaiting_first_byte.store(
            phase.in_flight == 0 && phase.first_byte.is_none(),
            Ordering::Relaxed,
        );
        drop(phase);
        self.changed.notify_one();
    }

    fn bytes_read(&self) {
        if self.awaiting_first_byte.load(Ordering::Relaxed) {
            self.update(|phase| {
                if phase.in_flight == 0 && phase.first_byte.is_none() {
                    phase.first_byte = Some(Instant::now());
                }
            });
        }
    }

    fn request_started(&self) {
        self.update(|phase| {
            phase.in_flight += 1;
            phase.first_byte = None;
        });
    }

    fn request_finished(&self) {
        self.update(|phase| {
            phase.in_flight = phase.in_flight.saturating_sub(1);
            phase.answered += 1;
            if phase.in_flight == 0 {
                phase.waiting_since = Instant::now();
                phase.first_byte = None;
            }
        });
    }

    /// Resolves when the connection has waited past a deadline with nothing in flight.
    async fn expired(&self, limits: Limits) -> Expiry {
        loop {
            let changed = self.changed.notified();
            let deadline = self
                .phase
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .deadline(limits);
            match deadline {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// The socket, noting reads for the header deadline and holding the connection's slot.
struct TrackedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One connection's view of the router: adds `ConnectInfo<SocketAddr>` (as
/// `into_make_service_with_connect_info` does), puts the body deadline on the request body,
/// answers 408 when it passed, and counts the request in flight until its response is sent.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
    body_timeout: Duration,
    health_only: bool,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let in_flight = InFlight(self.activity.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.body_timeout;
        let mut request = request.map(|body| {
            Body::new(DeadlineBody {
                inner: body,
                deadline,
                sleep: None,
                timed_out: timed_out.clone(),
            })
        });
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let refused = self.health_only && !HEALTH_PATHS.contains(&request.uri().path());
        let router = self.router.clone();
        Box::pin(async move {
            let response = if refused {
                AppError::Unavailable {
                    cause: "connection limit reached".into(),
                    retry_after: 1,
                }
                .into_response()
            } else {
                let response = router.oneshot(request).await?;
                if timed_out.load(Ordering::Relaxed) {
                    AppError::RequestTimeout.into_response()
                } else {
                    response
                }
            };
            Ok(response.map(|body| {
                Body::new(AnsweringBody {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// Marks the request finished when dropped: after its response body was sent, or with the
/// request future if the connection went away first.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request counted as in flight until it is finished.
struct AnsweringBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for AnsweringBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body failed because it did not arrive within `HTTP_BODY_TIMEOUT_MS`.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within the body timeout")]
pub struct BodyTimedOut;

/// True when `error` (or anything it wraps) is a [`BodyTimedOut`]: for handlers that read the
/// body themselves and want to answer 408 rather than 400.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes while it is still
/// being waited for. The timer only exists once someone reads the body.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: 100,
            reserved_connections: 4,
        }
    }

    #[test]
    fn the_cap_fits_the_open_file_limit_unless_configured() {
        assert_eq!(connection_cap(None, 32, None), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(connection_cap(None, 32, Some(1_048_576)), 10_000);
        assert_eq!(connection_cap(None, 32, Some(1024)), 1024 - 128 - 32);
        assert_eq!(connection_cap(None, 32, Some(10)), 1);
        assert_eq!(connection_cap(Some(5000), 32, Some(1024)), 5000);
        assert_eq!(connection_cap(Some(50), 32, None), 50);
    }

    #[test]
    fn deadlines_follow_the_connection_phase() {
        let limits = limits();
        let activity = Activity::new();
        let phase = || *activity.phase.lock().unwrap();
        // A new connection must send its headers within the header timeout of accept.
        let accepted = phase().waiting_since;
        let on_accept = Some((accepted + limits.header_timeout, Expiry::Headers));
        assert_eq!(phase().deadline(limits), on_accept);
        activity.bytes_read();
        assert_eq!(phase().deadline(limits), on_accept);
        activity.request_started();
        assert_eq!(phase().deadline(limits), None);
        activity.request_finished();
        // Between requests: the idle timeout, until the next request's first byte.
        let answered = phase().waiting_since;
        assert!(answered >= accepted);
        assert_eq!(
            phase().deadline(limits),
            Some((answered + limits.idle_timeout, Expiry::Idle))
        );
        activity.bytes_read();
        let first = phase().first_byte.expect("first byte noted");
        let headers_due = Some((first + limits.header_timeout, Expiry::Headers));
        assert_eq!(phase().deadline(limits), headers_due);
        activity.bytes_read();
        assert_eq!(phase().deadline(limits), headers_due);
        // Two requests in flight (a pipelined pair): no deadline until both are answered.
        activity.request_started();
        activity.request_started();
        activity.request_finished();
        assert_eq!(phase().deadline(limits), None);
        activity.request_finished();
        assert_eq!(phase().deadline(limits).unwrap().1, Expiry::Idle);
    }

    #[tokio::test]
    async fn an_idle_connection_expires_and_a_busy_one_does_not() {
        let limits = Limits {
            idle_timeout: Duration::from_millis(50),
            ..limits()
        };
        let activity = Arc::new(Activity::new());
        activity.request_started();
        let busy = tokio::time::timeout(Duration::from_millis(150), activity.expired(limits));
        assert!(busy.await.is_err(), "a request in flight never expires");
        activity.request_finished();
        let idle = tokio::time::timeout(Duration::from_secs(5), activity.expired(limits));
        assert_eq!(idle.await.unwrap(), Expiry::Idle);
    }

    #[test]
    fn body_timeouts_are_found_through_wrappers() {
        let wrapped = axum::Error::new(BodyTimedOut);
        assert!(is_body_timeout(&wrapped));
        assert!(!is_body_timeout(&io::Error::other("other")));
    }
}
