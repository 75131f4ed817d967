//! The HTTP client: one HTTP/1.1 keep-alive connection per worker, made with hyper's low-level
//! `client::conn::http1` on a tokio `TcpStream` with `TCP_NODELAY`. No pool, no retries: the
//! cheapest client there is, so the load generator steals as little CPU as possible from the
//! server it shares the machine with.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, client::conn::http1::SendRequest, header};
use hyper_util::rt::TokioIo;
use std::{net::SocketAddr, time::Duration};
use tokio::net::TcpStream;

/// One open connection; dropping it closes the socket.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    /// Sends one request and reads the whole response: `(status, body)`. Any error leaves the
    /// connection unusable; the caller drops it and opens another.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    /// Like [`Conn::send`], with the response headers (for `Set-Cookie` and `Location`).
    pub async fn send_full(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, headers, body))
    }
}

/// `GET path` on a fresh connection: the status, or `None` when nothing answered in time.
pub async fn get_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let attempt = async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::get(path)
            .header(header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        Some(status)
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}

/// The non-negative integer after `"field":` in a small JSON body (`{"success":true,"count":20}`),
/// found without a full parse to keep the client cheap.
pub fn json_count(body: &[u8], field: &str) -> Option<u64> {
    let needle = format!("\"{field}\":");
    let at = body
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let digits: String = body[at + needle.len()..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_ingest_answers() {
        assert_eq!(
            json_count(br#"{"success":true,"count":20}"#, "count"),
            Some(20)
        );
        assert_eq!(
            json_count(br#"{"success":true,"spooled": 3,"note":"x"}"#, "spooled"),
            Some(3)
        );
        assert_eq!(json_count(br#"{"success":true}"#, "count"), None);
    }
}
