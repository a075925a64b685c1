//! The client's connections to nodes: one HTTP/2 connection per node, over TCP writes that
//! wait for the tasks already ready to run before they go out.
//!
//! - hyper's HTTP/2 client sends a request's headers from the connection's task and its
//!   body from a task of the request's own, so on its own each request leaves in two TCP
//!   writes: two system calls here and two wake-ups at the node. A write that first lets
//!   the other ready tasks run finds the body already queued behind the headers and sends
//!   both at once.
//! - Calls go straight to hyper's connection. tonic's `Channel` would put a buffer task
//!   between every call and the connection, and reconnect on its own; here the client
//!   reconnects when a connection is found closed, and it already retries.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::proto::admin::admin_client::AdminClient;
use crate::proto::chat::chat_client::ChatClient;

/// How long a node may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// One HTTP/2 connection to one node; clones share it.
#[derive(Clone)]
pub struct Link {
    send: SendRequest<tonic::body::Body>,
    origin: http::Uri,
}

impl Link {
    /// Connects to the node at `address` (`host:port`). The connection is driven by a task
    /// of its own, which ends when the node closes it or the last clone is dropped.
    pub async fn open(address: &str) -> Result<Link, tonic::Status> {
        let origin: http::Uri = format!("http://{address}").parse().map_err(|e| {
            tonic::Status::invalid_argument(format!("cluster: bad address {address}: {e}"))
        })?;
        let connect = GatheringStream::connect(origin.clone());
        let io = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(unreachable_node(address, e)),
            Err(_) => {
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                return Err(unreachable_node(address, e));
            }
        };
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|e| unreachable_node(address, e))?;
        tokio::spawn(async move {
            // Its end is seen by the next call, as a closed link.
            let _ = connection.await;
        });
        Ok(Link { send, origin })
    }

    /// Whether the connection is gone (the node closed it, or died).
    pub fn is_closed(&self) -> bool {
        self.send.is_closed()
    }

    pub fn chat(&self) -> ChatClient<Link> {
        ChatClient::with_origin(self.clone(), self.origin.clone())
    }

    pub fn admin(&self) -> AdminClient<Link> {
        AdminClient::with_origin(self.clone(), self.origin.clone())
    }
}

/// UNAVAILABLE with the network's error as its source: the node said nothing.
fn unreachable_node(
    address: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> tonic::Status {
    let mut status = tonic::Status::unavailable(format!("cannot connect to {address}: {e}"));
    status.set_source(std::sync::Arc::new(e));
    status
}

impl tower::Service<http::Request<tonic::body::Body>> for Link {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.send.send_request(request))
    }
}

/// A connection whose writes go out one scheduler turn late, together with whatever the
/// other tasks queued meanwhile.
struct GatheringStream {
    inner: TokioIo<TcpStream>,
    /// Whether this write has already let the other ready tasks run.
    waited: bool,
}

impl GatheringStream {
    /// Connects to the node at `uri` (`http://host:port`), without Nagle's delay.
    async fn connect(uri: http::Uri) -> std::io::Result<GatheringStream> {
        let Some(authority) = uri.authority() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no host in {uri}"),
            ));
        };
        let stream = match authority.port_u16() {
            Some(_) => TcpStream::connect(authority.as_str()).await?,
            None => TcpStream::connect((authority.host(), 80)).await?,
        };
        stream.set_nodelay(true)?;
        Ok(GatheringStream::new(stream))
    }

    fn new(stream: TcpStream) -> GatheringStream {
        GatheringStream {
            inner: TokioIo::new(stream),
            waited: false,
        }
    }

    /// `Pending` once per write, after asking to be polled again: the tasks woken before
    /// this one run first.
    fn wait_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.waited {
            self.waited = false;
            return Poll::Ready(());
        }
        self.waited = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl hyper::rt::Read for GatheringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for GatheringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.wait_turn(cx));
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.wait_turn(cx));
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use hyper::rt::Write;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Counts the times it was woken.
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_write_goes_out_after_one_turn_of_the_other_tasks() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: http::Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let (connected, accepted) = tokio::join!(GatheringStream::connect(uri), listener.accept());
        let mut stream = connected.unwrap();
        let (mut peer, _) = accepted.unwrap();
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);

        let first = Pin::new(&mut stream).poll_write(&mut cx, b"headers");
        assert!(first.is_pending(), "the first call waits its turn");
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "and asks to be polled again"
        );
        match Pin::new(&mut stream).poll_write(&mut cx, b"headers") {
            Poll::Ready(Ok(7)) => {}
            other => panic!("the second call writes, got {other:?}"),
        }
        let again = Pin::new(&mut stream).poll_write(&mut cx, b"body");
        assert!(again.is_pending(), "the next write waits a turn of its own");

        let mut got = [0u8; 7];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"headers");
    }

    #[tokio::test]
    async fn dropping_the_last_clone_of_a_link_closes_its_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (link, accepted) = tokio::join!(Link::open(&address), listener.accept());
        let link = link.unwrap();
        let (mut peer, _) = accepted.unwrap();
        let copy = link.clone();
        drop(link);
        let mut preface = [0u8; 24];
        peer.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        drop(copy);
        // The rest of what the client sends (its settings, a goodbye), then the end.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), peer.read_to_end(&mut rest));
        assert!(
            closed.await.is_ok(),
            "the connection outlived its last link"
        );
    }

    #[tokio::test]
    async fn a_node_that_is_not_there_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let uri: http::Uri = format!("http://{address}").parse().unwrap();
        let refused = GatheringStream::connect(uri).await;
        assert!(refused.is_err());
    }
}
