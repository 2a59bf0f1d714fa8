//! The accept loop: herald's own, so that no client can hold a connection,
//! a file descriptor or the shutdown for longer than the configured limits.
//!
//! - At most `http.max_connections` connections are served at once; more
//!   wait in the kernel's listen queue, so a flood costs no memory here.
//! - A request's line and headers must arrive within `header_timeout_secs`
//!   (hyper's header-read timer, which also runs while a keep-alive
//!   connection waits for its next request), and its body within
//!   `body_timeout_secs` (tower-http's body timeout).
//! - A client that stops reading cannot hold a connection either: once no
//!   byte of a response could be written for `send_timeout_secs` (the
//!   socket's buffers are full and the client takes nothing), the write
//!   fails and the connection is closed, however large the answer (the
//!   archive feed, an API list). The timer is armed only when a write
//!   finds the buffers full, never on reads or writes that go through: a
//!   read/write idle timer around each socket was tried before and dropped,
//!   as re-arming it on every read cost /subscribe measurably.
//! - On shutdown the listener closes at once, connections are asked to
//!   finish their current request, and whatever is still open at the
//!   deadline is dropped: the deadline holds whatever clients do.

use crate::config::HttpConfig;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::add_extension::AddExtension;
use tower_http::timeout::RequestBodyTimeout;

/// Serves `app` on `listener` until `shutdown` fires, then gives open
/// connections until `deadline` (counted from the shutdown) to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpConfig,
    shutdown: CancellationToken,
    deadline: Duration,
) {
    let body_timeout = Duration::from_secs(limits.body_timeout_secs.max(1));
    let send_timeout = Duration::from_secs(limits.send_timeout_secs.max(1));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs.max(1)))
        .max_buf_size(64 * 1024);
    let mut connections = JoinSet::new();
    loop {
        let slot = tokio::select! {
            // Finished connections are reaped before anything else.
            biased;
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(SendTimeout::new(stream, send_timeout));
        let service = TowerToHyperService::new(AddExtension::new(
            RequestBodyTimeout::new(app.clone(), body_timeout),
            ConnectInfo(peer),
        ));
        let http = http.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let connection = http.serve_connection(io, service);
            tokio::pin!(connection);
            let finished = tokio::select! {
                result = connection.as_mut() => Some(result),
                _ = stop.cancelled() => None,
            };
            let result = match finished {
                Some(result) => result,
                None => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "shutdown deadline passed: closing the connections still open"
        );
        connections.shutdown().await;
    }
}

/// A client's socket whose writes fail once none could make progress for
/// `limit`: the client has stopped reading and the buffers are full.
struct SendTimeout {
    stream: TcpStream,
    limit: Duration,
    /// Armed when a write finds the buffers full; dropped by the next
    /// write that goes through.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SendTimeout {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            stalled: None,
        }
    }

    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of the response for the send timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for SendTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.bounded(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.bounded(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.bounded(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.bounded(cx, poll)
    }
}
