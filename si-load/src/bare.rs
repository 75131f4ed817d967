//! `si-load bare`: the baseline the real server is compared with — a bare axum handler on
//! 127.0.0.1 that reads the request body and answers 201 `{"success":true,"count":1}`, with no
//! key check, parsing or storage. It stops on SIGTERM, Ctrl-C, or after `max_time`.

use axum::{
    Router,
    body::Bytes,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use std::{net::Ipv4Addr, time::Duration};

pub async fn serve(port: u16, max_time: Duration) -> Result<(), String> {
    let app = Router::new()
        .route("/v1/{channel}", post(accept))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("si-load bare: listening on http://{addr} (stops after {max_time:?})");
    axum::serve(listener, app)
        .with_graceful_shutdown(stop(max_time))
        .await
        .map_err(|e| e.to_string())
}

async fn accept(body: Bytes) -> impl IntoResponse {
    std::hint::black_box(body.len());
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"success":true,"count":1}"#,
    )
}

async fn stop(max_time: Duration) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
        _ = tokio::time::sleep(max_time) => eprintln!("si-load bare: --max-time reached"),
    }
}
