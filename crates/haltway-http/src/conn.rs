//! What happens on a connection before and around the router: the listener that gives the
//! HTTP server's own error answers the API's JSON shape, and the middleware that refuses a
//! declared oversize body at once and says when a connection will close.
//!
//! # Invariants
//! - Every answer the server sends, the router's or the HTTP layer's own (a malformed request
//!   line, a header section too large), carries an [`ErrorBody`](crate::ErrorBody) when it is
//!   an error.
//! - An answer sent before the request's body was read to its end says `Connection: close`:
//!   the server will not read the rest, so the connection cannot carry another request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::AppState;
use crate::error::{ApiError, ApiErrorKind};

/// A TCP listener for [`axum::serve()`] whose connections answer the HTTP layer's own errors
/// (400 for a malformed request, 414 for a URI too long, 431 for headers too large) in the
/// API's JSON error shape instead of with an empty body.
///
/// ```no_run
/// # async fn demo(app: axum::Router) -> std::io::Result<()> {
/// let tcp = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(haltway_http::ApiListener::new(tcp), app).await
/// # }
/// ```
#[derive(Debug)]
pub struct ApiListener {
    tcp: TcpListener,
}

impl ApiListener {
    /// Wraps a bound listener.
    #[must_use]
    pub fn new(tcp: TcpListener) -> Self {
        ApiListener { tcp }
    }
}

impl axum::serve::Listener for ApiListener {
    type Io = ApiIo<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.tcp).await;
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        (ApiIo::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A connection of an [`ApiListener`]: reads pass through; an automatic error answer of the
/// HTTP layer is rewritten, as it is written, into the same answer with a JSON body.
#[derive(Debug)]
pub struct ApiIo<T> {
    inner: T,
    /// A rewritten answer being written, how much of it is out, and how many bytes of the
    /// original it stands for (reported as written once the rewrite is out).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> ApiIo<T> {
    fn new(inner: T) -> Self {
        ApiIo {
            inner,
            pending: None,
        }
    }
}

/// The rewrite of `buf` when it opens with one of the HTTP layer's automatic error answers:
/// a 4xx head with `connection: close`, `content-length: 0` and no content type, which the
/// router never sends (its errors all have a JSON body). Returns the new bytes and the length
/// of the head they replace.
fn rewrite(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let status = buf.strip_prefix(b"HTTP/1.1 4")?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    if !head.contains("\r\ncontent-length: 0\r\n")
        || !head.contains("\r\nconnection: close\r\n")
        || head.contains("\r\ncontent-type:")
    {
        return None;
    }
    let code = std::str::from_utf8(status.get(..2)?).ok()?;
    let code: u16 = format!("4{code}").parse().ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    let (kind, message) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            ApiErrorKind::HeadersTooLarge,
            "the request's headers are too large or too many",
        ),
        StatusCode::URI_TOO_LONG => (ApiErrorKind::UriTooLong, "the request's URI is too long"),
        _ => (
            ApiErrorKind::MalformedRequest,
            "the request is not valid HTTP/1.1 (its request line or a header has bytes that \
             are not allowed there)",
        ),
    };
    let body =
        serde_json::json!({"error": {"type": kind.as_str(), "message": message, "field": null}})
            .to_string();
    // The date and any other header the layer wrote stay; the body's length and type change.
    let mut out = Vec::with_capacity(end + body.len() + 64);
    for line in std::str::from_utf8(&buf[..end - 2])
        .ok()?
        .split_inclusive("\r\n")
    {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    Some((out, end))
}

impl<T: AsyncRead + Unpin> AsyncRead for ApiIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ApiIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewrite(buf) {
                Some((bytes, stands_for)) => this.pending = Some((bytes, 0, stands_for)),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        let Some((bytes, sent, stands_for)) = &mut this.pending else {
            unreachable!("set above");
        };
        while *sent < bytes.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        let stands_for = *stands_for;
        this.pending = None;
        Poll::Ready(Ok(stands_for))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Middleware: a body declared larger than the limit is refused before any of it is read
/// (413), and an answer sent before the body was read to its end says `Connection: close`.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = state.config.body_limit;
    if declared.is_some_and(|n| n > limit as u64) {
        return closing(ApiError::too_large(limit).into_response());
    }
    let has_body =
        declared.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        Body::new(Tracked {
            inner: body,
            read: read.clone(),
        })
    });
    let resp = next.run(req).await;
    if read.load(Ordering::Acquire) {
        resp
    } else {
        closing(resp)
    }
}

fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A request body that records when it was read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
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
    use super::rewrite;

    #[test]
    fn only_the_layers_own_empty_error_answers_are_rewritten() {
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                     content-length: 0\r\ndate: Wed, 02 Dec 2026 16:04:19 GMT\r\n\r\n";
        let (out, stands_for) = rewrite(auto).expect("rewritten");
        assert_eq!(stands_for, auto.len());
        let text = String::from_utf8(out).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("\r\ndate: "), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"]["type"], "headers_too_large");

        let bad = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let (out, _) = rewrite(bad).expect("rewritten");
        assert!(String::from_utf8_lossy(&out).contains("malformed_request"));

        // The router's own answers pass untouched: they have a type, or keep the connection.
        for own in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n",
        ] {
            assert!(rewrite(own).is_none(), "{}", String::from_utf8_lossy(own));
        }
    }
}
