//! The API over a real socket, as `haltway serve` runs it: answers the HTTP layer makes
//! itself, bodies refused before they are read, and connections that say when they close.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves the test API through `ApiListener` on a free port.
async fn serve() -> (SocketAddr, support::Api) {
    let api = api();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let app = api.router.clone();
    tokio::spawn(async move {
        axum::serve(haltway_http::ApiListener::new(tcp), app)
            .await
            .expect("serve");
    });
    (addr, api)
}

/// One answer read off a connection: status, lower-case head, body.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} / {}", self.head, self.body))
    }

    fn assert_error(&self, status: u16, kind: &str) {
        assert_eq!(self.status, status, "{} {}", self.head, self.body);
        assert!(
            self.head.contains("content-type: application/json"),
            "{}",
            self.head
        );
        let json = self.json();
        assert_eq!(json["error"]["type"], kind, "{json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

/// Reads one answer (head and a `content-length` body) within 5 s.
async fn read_answer(conn: &mut TcpStream) -> Raw {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().expect("length"));
                if buf.len() >= end + 4 + len {
                    let status = head[9..12].parse().expect("status");
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return Raw { status, head, body };
                }
            }
            let n = conn.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed before a whole answer: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("an answer within 5 s")
}

async fn exchange(addr: SocketAddr, raw: &[u8]) -> Raw {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(raw).await.expect("write");
    read_answer(&mut conn).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_http_get_the_json_error_shape() {
    let (addr, _api) = serve().await;
    let bad_path = exchange(addr, b"GET /v1/jobs/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n").await;
    bad_path.assert_error(400, "malformed_request");

    let mut huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 500_000));
    huge.extend_from_slice(b"\r\n\r\n");
    exchange(addr, &huge)
        .await
        .assert_error(431, "headers_too_large");

    let mut many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        many.extend_from_slice(format!("X-H{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    exchange(addr, &many)
        .await
        .assert_error(431, "headers_too_large");

    let control = exchange(
        addr,
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/\x01json\r\n\
          Content-Length: 2\r\n\r\n{}",
    )
    .await;
    control.assert_error(400, "malformed_request");

    // A valid request still gets the router's own answer.
    let ok = exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let (addr, api) = serve().await;
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n",
        api.acme
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    // No byte of the body is sent: the answer must not wait for it.
    let started = std::time::Instant::now();
    let answer = read_answer(&mut conn).await;
    answer.assert_error(413, "payload_too_large");
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_body_is_read_says_the_connection_closes() {
    let (addr, api) = serve().await;
    let body = r#"{"kind":"steps","input":{"items":1}}"#;

    // A bad key is refused before the body is read; the body comes in a later packet.
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let refused = read_answer(&mut conn).await;
    refused.assert_error(401, "unauthorized");
    assert!(
        refused.head.contains("connection: close"),
        "the client must learn that this connection carries no more requests: {}",
        refused.head
    );

    // A request whose body is read keeps its connection for the next one.
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        api.acme,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(body.as_bytes()).await.expect("write");
    let created = read_answer(&mut conn).await;
    assert_eq!(created.status, 202, "{}", created.body);
    assert!(
        !created.head.contains("connection: close"),
        "{}",
        created.head
    );
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut conn).await.status, 200);
}
