//! [`ConnIo`]: a client connection's socket with a write timeout, telling the connection's
//! watchdog when bytes arrive.
//!
//! A client that stops reading leaves the gateway's writes pending forever, and the answer they
//! carry pinned in memory (40 such sockets once held 136 MB). A write that makes no progress for
//! `write_timeout` fails with `TimedOut`; hyper then drops the connection and everything it held.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::listener::ConnState;

pub struct ConnIo {
    tcp: TcpStream,
    state: Arc<ConnState>,
    write_timeout: Duration,
    /// Armed while a write is blocked; allocated on the first blocked write only.
    write_deadline: Option<Pin<Box<Sleep>>>,
    write_blocked: bool,
}

impl ConnIo {
    pub fn new(tcp: TcpStream, state: Arc<ConnState>, write_timeout: Duration) -> Self {
        Self { tcp, state, write_timeout, write_deadline: None, write_blocked: false }
    }

    /// A write made no progress: arm the deadline (once per blocked stretch) and fail when it has
    /// passed. Polling the timer registers the waker, so the deadline fires even if the socket
    /// never becomes writable.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = Instant::now() + self.write_timeout;
        let sleep = self.write_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.write_blocked {
            self.write_blocked = true;
            sleep.as_mut().reset(deadline);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read its answer within connections.write_timeout_secs",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn on_write<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.blocked(cx).map(Err),
            ready => {
                self.write_blocked = false;
                ready
            }
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        polled
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.on_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.on_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.tcp).poll_flush(cx);
        self.on_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.tcp).poll_shutdown(cx);
        self.on_write(cx, polled)
    }
}
