//! The audit trail's view of each request: sets the request context the services record
//! actions with (`services::audit::RequestContext`: method, path, client IP; the session layer
//! adds the user), and records the error handler's answers (`AppError`, reference §2.11) as
//! `error` entries: every 5xx with its hidden cause, and the 4xx a person was shown (bad input,
//! forbidden, conflict) outside ingestion. 404s, 429s, 408s and the 503 of a view still being
//! computed are not recorded: scanners, floods and self-reloading pages would push real entries
//! out of the capped log.

use crate::{
    error::{ErrorCause, ErrorPageInfo},
    ingest::Ingestor,
    services::audit,
    store::Stores,
};
use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::Response,
};
use std::{net::SocketAddr, sync::Arc};

pub async fn audit_context(
    State(ingestor): State<Arc<Ingestor>>,
    State(stores): State<Stores>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            ingestor
                .enricher
                .client_ip(peer.ip(), request.headers())
                .to_string()
        });
    let path = request.uri().path().to_string();
    let ctx = audit::RequestContext::new(request.method().as_str(), &path, ip);
    audit::with_request(ctx, async move {
        let response = next.run(request).await;
        let status = response.status().as_u16();
        let info = response.extensions().get::<ErrorPageInfo>();
        let recorded = match status {
            // A view still being computed is no failure, and its page reloads itself every few
            // seconds: recording each answer would push real entries out of the log.
            _ if info.is_some_and(|i| i.reload_after.is_some()) => None,
            500.. => response
                .extensions()
                .get::<ErrorCause>()
                .map(|c| c.0.clone())
                .or_else(|| info.map(|i| i.message.clone())),
            404 | 408 | 429 => None,
            400.. if !path.starts_with("/v1") => info.map(|i| i.message.clone()),
            _ => None,
        };
        if let Some(message) = recorded {
            audit::error(&stores, status, &message).await;
        }
        response
    })
    .await
}
