//! A TCP proxy that can blackhole its connections: once `blackhole` is called, every
//! connection open at that moment stops forwarding in both directions but stays open, as a
//! network partition or a stuck middlebox leaves it; connections made afterwards work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub(crate) async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let generation = Arc::new(AtomicU64::new(0));
        let gen_all = generation.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(target).await else {
                    continue;
                };
                // As a real proxy does (pgbouncer, HAProxy, Envoy): small replies go out at
                // once instead of waiting for the previous one's acknowledgement.
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let born = gen_all.load(Ordering::Acquire);
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(pump(dr, uw, born, gen_all.clone()));
                tokio::spawn(pump(ur, dw, born, gen_all.clone()));
            }
        });
        Proxy { addr, generation }
    }

    /// Freezes every connection open now.
    pub(crate) fn blackhole(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    born: u64,
    generation: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if generation.load(Ordering::Acquire) != born {
            // Blackholed: hold both ends open and forward nothing, ever.
            let _keep = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
