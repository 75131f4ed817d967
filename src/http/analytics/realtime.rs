//! Realtime for one project: `…/realtime` (JSON: visitors in the last five minutes and the
//! newest page views and events) and `…/realtime/stream`, a Server-Sent Events stream of the
//! same, pushed as documents are acknowledged on any instance (`runtime::realtime`). Mounted
//! with the other analytics routes, so a member's stream lives under `/projects/{id}` and a
//! public link's under `/p/{id}/{token}`.
//!
//! A stream belongs to a signed-in session or to a public link and ends (an `end` event, then
//! the close) when the session signs out or is ended by a password change, the member loses
//! access to the project, the link is revoked or replaced, the project is deleted (a signal
//! where there is one, else the check every 10 s), or the server shuts down; each client (session, or IP for public links) holds at
//! most `REALTIME_STREAMS_PER_CLIENT` at once. The stream's only buffer is a small channel: a
//! client that stops reading lags on the hub's ring and is told how many signals it missed.

use super::{AnalyticsAccess, Viewer};
use crate::{
    config::Config,
    domain::{ids::DocId, params::BadParam},
    error::AppError,
    ingest::Ingestor,
    runtime::{
        realtime::{LiveHit, RealtimeHub, Signal, StreamPermit, session_key},
        sessions::AppSessionStore,
    },
    services::realtime as svc,
    state::AppState,
    store::Stores,
};
use axum::{
    Json, Router,
    extract::{ConnectInfo, FromRef, Query, State},
    http::{HeaderMap, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use serde_json::json;
use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};
use tokio::sync::{broadcast::error::RecvError, mpsc};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/realtime", get(realtime_now))
        .route("/realtime/stream", get(realtime_stream))
}

/// The visitor count is sent again at least this often (people leave the window too).
const RECOUNT_EVERY: Duration = Duration::from_secs(15);
/// After new hits, the count is read again this soon (several hits, one read).
const RECOUNT_AFTER_HITS: Duration = Duration::from_millis(300);
/// How often a stream checks that its session or link is still good (a sign-out or revocation
/// on an instance whose signal did not arrive, a deleted project).
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Events waiting for a slow client at most; beyond that the stream skips ahead.
const STREAM_BUFFER: usize = 16;

/// The realtime routes take no query parameters.
fn no_params(query: &[(String, String)]) -> Result<(), AppError> {
    match query.first() {
        Some((name, _)) => Err(BadParam {
            name: name.chars().take(64).collect(),
            problem: "not a parameter of this view".into(),
            code: "BAD_PARAMETER",
        }
        .into()),
        None => Ok(()),
    }
}

/// `GET …/realtime`: `{visitors, windowMinutes, recent: [{kind, label, at, country?}]}`.
async fn realtime_now(
    State(stores): State<crate::store::Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    access: AnalyticsAccess,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    no_params(&query)?;
    let now = clock.now_ms();
    let project = access.project.id;
    let (visitors, recent) = tokio::try_join!(
        svc::visitors_now(&stores, project, now),
        svc::recent_hits(&stores, project, now),
    )?;
    Ok(Json(json!({
        "visitors": visitors,
        "windowMinutes": svc::WINDOW_MS / 60_000,
        "recent": recent,
    }))
    .into_response())
}

/// Whose stream it is, for the cap, the sign-out signal and the periodic check.
enum Owner {
    Session {
        id: tower_sessions::session::Id,
        key: String,
    },
    Link {
        token: String,
    },
}

/// What a live stream reads while it runs: the stores (counts, hits, access checks), the
/// session records (whether a member's session still signs them in), the configuration (the
/// public-link pepper) and the realtime hub.
#[derive(Clone)]
struct StreamState {
    stores: Stores,
    sessions: AppSessionStore,
    config: Arc<Config>,
    realtime: Arc<RealtimeHub>,
    clock: crate::domain::clock::SharedClock,
}

impl FromRef<AppState> for StreamState {
    fn from_ref(s: &AppState) -> Self {
        Self {
            stores: s.stores.clone(),
            sessions: s.sessions.clone(),
            config: s.config.clone(),
            realtime: s.realtime.clone(),
            clock: s.clock.clone(),
        }
    }
}

/// `GET …/realtime/stream`: `text/event-stream` with events `visitors` (`{visitors,
/// windowMinutes}`), `hits` (`{hits: [...], count}`), `lagged` (`{skipped}`) and a last `end`
/// (`{reason}`: `signed-out`, `password-changed`, `access-removed`, `deleted`, `revoked`,
/// `shutdown`). 429 when the client holds too many.
async fn realtime_stream(
    State(state): State<StreamState>,
    State(ingestor): State<Arc<Ingestor>>,
    access: AnalyticsAccess,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    no_params(&query)?;
    let ip = || crate::http::rate_limit::ip_key(ingestor.enricher.client_ip(peer.ip(), &headers));
    let (owner, client) = match &access.viewer {
        Viewer::Member { auth, .. } => match auth.session.id() {
            Some(id) => {
                let key = session_key(&id.to_string());
                (
                    Owner::Session {
                        id,
                        key: key.clone(),
                    },
                    format!("s:{key}"),
                )
            }
            None => return Err(AppError::Forbidden("No session.".into())),
        },
        Viewer::Public => {
            let token = access
                .base
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            (Owner::Link { token }, format!("ip:{}", ip()))
        }
    };
    let permit = state
        .realtime
        .open_stream(&client)
        .ok_or(AppError::TooManyConnections {
            limit: state.realtime.per_client(),
            retry_after: 5,
        })?;
    let (tx, mut rx) = mpsc::channel::<Event>(STREAM_BUFFER);
    crate::tasks::spawn(
        "realtime_stream",
        run_stream(state, access.project.id, owner, permit, tx),
    );
    let events =
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok::<_, Infallible>)));
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx would otherwise hold the events back in its buffer.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// Why a stream ended, as its last `end` event says.
fn end(reason: &str) -> Event {
    event("end", json!({ "reason": reason }))
}

/// One stream's life: the count and recent feed first, then hits as they come, the count
/// again after hits and every [`RECOUNT_EVERY`], until the client leaves or the stream ends.
async fn run_stream(
    state: StreamState,
    project: DocId,
    owner: Owner,
    _permit: StreamPermit,
    tx: mpsc::Sender<Event>,
) {
    let hub = state.realtime.clone();
    let mut signals = hub.subscribe();
    let mut closing = hub.closing();
    if *closing.borrow_and_update() {
        let _ = tx.send(end("shutdown")).await;
        return;
    }
    let project_hex = project.to_hex();
    let count = |state: &StreamState| {
        let state = state.clone();
        async move {
            svc::visitors_now(&state.stores, project, state.clock.now_ms())
                .await
                .ok()
                .map(visitors_event)
        }
    };
    if let Some(first) = count(&state).await
        && tx.send(first).await.is_err()
    {
        return;
    }
    if let Ok(recent) = svc::recent_hits(&state.stores, project, state.clock.now_ms()).await
        && !recent.is_empty()
    {
        let mut oldest_first = recent;
        oldest_first.reverse();
        let _ = tx.send(hits_event(&oldest_first, 0)).await;
    }
    let mut recount =
        tokio::time::interval_at(tokio::time::Instant::now() + RECOUNT_EVERY, RECOUNT_EVERY);
    let mut check =
        tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
    let mut recount_at: Option<tokio::time::Instant> = None;
    loop {
        let soon = async {
            match recount_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let out = tokio::select! {
            () = tx.closed() => return,
            _ = closing.changed() => {
                let _ = tx.send(end("shutdown")).await;
                return;
            }
            got = signals.recv() => match got {
                Ok(signal) => match &*signal {
                    Signal::Hits { project: p, hits, count: n } if *p == project_hex => {
                        recount_at.get_or_insert(tokio::time::Instant::now() + RECOUNT_AFTER_HITS);
                        Some(hits_event(hits, *n))
                    }
                    Signal::SessionEnded { session } => match &owner {
                        Owner::Session { key, .. } if key == session => {
                            let _ = tx.send(end("signed-out")).await;
                            return;
                        }
                        _ => None,
                    },
                    Signal::LinkChanged { project: p } if *p == project_hex => {
                        if let Some(reason) = still_allowed(&state, project, &owner).await {
                            let _ = tx.send(end(reason)).await;
                            return;
                        }
                        None
                    }
                    _ => None,
                },
                Err(RecvError::Lagged(skipped)) => {
                    recount_at.get_or_insert(tokio::time::Instant::now() + RECOUNT_AFTER_HITS);
                    Some(event("lagged", json!({ "skipped": skipped })))
                }
                Err(RecvError::Closed) => return,
            },
            () = soon => {
                recount_at = None;
                count(&state).await
            }
            _ = recount.tick() => count(&state).await,
            _ = check.tick() => {
                if let Some(reason) = still_allowed(&state, project, &owner).await {
                    let _ = tx.send(end(reason)).await;
                    return;
                }
                None
            }
        };
        if let Some(out) = out
            && tx.send(out).await.is_err()
        {
            return;
        }
    }
}

fn visitors_event(visitors: u64) -> Event {
    event(
        "visitors",
        json!({ "visitors": visitors, "windowMinutes": svc::WINDOW_MS / 60_000 }),
    )
}

fn hits_event(hits: &[LiveHit], count: u64) -> Event {
    event("hits", json!({ "hits": hits, "count": count }))
}

/// `None` while the stream may go on; else why it ends: a member's session signed out or
/// ended by a password change, the member's access to the project removed (membership, or the
/// platform role that gave it), the project deleted; a public link revoked. A store that cannot
/// answer ends nothing (an outage is not a revocation).
async fn still_allowed(state: &StreamState, project: DocId, owner: &Owner) -> Option<&'static str> {
    match owner {
        Owner::Session { id, .. } => {
            use tower_sessions::SessionStore;
            let record = match state.sessions.load(id).await {
                Ok(Some(record)) => record,
                Ok(None) => return Some("signed-out"),
                Err(_) => return None,
            };
            let user = match crate::http::session::record_signs_in(&state.stores, &record).await {
                Ok(Ok(user)) => user,
                Ok(Err(reason)) => return Some(reason),
                Err(_) => return None,
            };
            svc::member_access_ended(&state.stores, &user, project)
                .await
                .unwrap_or(None)
        }
        Owner::Link { token } => {
            match crate::services::public_links::verify(
                &state.stores,
                state.config.public_link_pepper.expose(),
                project,
                token,
            )
            .await
            {
                Err(crate::store::StoreError::NotFound) => Some("revoked"),
                _ => None,
            }
        }
    }
}
