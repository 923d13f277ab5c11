//! The HTTP server's own loop: accepting connections within limits, so that no client, idle
//! or slow, can take the service's descriptors, threads or memory (CONTRACT.md §11).
//!
//! - At most `server.max_connections` connections are served at once; one more is answered
//!   `503` at once and closed, rather than left waiting in the backlog.
//! - A connection that does not send a whole request head within `HEADER_TIMEOUT` is closed,
//!   and so is one left idle between requests for as long (hyper starts the same timer when a
//!   keep-alive connection waits for its next request).
//! - A response whose reader takes nothing for `WRITE_STALL` is abandoned and its connection
//!   closed (`Stalling`).
//! - When accepting fails for want of descriptors, the loop waits and tries again, saying so
//!   in the log once until it accepts again.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// A request head must arrive within this, and an idle keep-alive connection is closed after it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A response whose reader has taken nothing for this long is abandoned.
pub const WRITE_STALL: Duration = Duration::from_secs(30);
/// How long a shutdown waits for the connections still open to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait before accepting again when the process has no descriptor left.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// The body of the answer to a connection over the cap.
const OVER_CAPACITY: &str = "{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections are open (server.max_connections); retry\"}}\n";

/// Serves `router` on `listener` until `shutdown` completes, then drains for a while.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let mut starved = false;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    if out_of_descriptors(&error) {
                        if !starved {
                            tracing::error!(%error, "cannot accept connections: no file descriptor left; retrying until one is free");
                            starved = true;
                        }
                        tokio::time::sleep(ACCEPT_RETRY).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if starved {
            tracing::info!("accepting connections again");
            starved = false;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Stalling::new(stream, WRITE_STALL));
        let connection = builder.serve_connection(io, TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout were dropped");
    }
    Ok(())
}

fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Answers a connection over the cap with `503` and closes it, giving it a second at most.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             connection: close\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{OVER_CAPACITY}",
            OVER_CAPACITY.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Raises this process's soft limit of open files to its hard limit, and returns it.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// A socket whose writes fail with `TimedOut` once one has waited `stall` without progress:
/// a reader that stops reading cannot keep its response, and its connection, forever.
///
/// It also puts hyper's own answers in the §4 error shape: a request hyper cannot read (a head
/// over its limits, `431`; a request line that does not parse, such as a path that is not
/// UTF-8, `400`) is answered by hyper itself, before any handler, with no body; that answer is
/// written as the same status with the error body instead.
struct Stalling {
    inner: TcpStream,
    stall: Duration,
    /// Armed while a write waits for the socket; disarmed by any progress.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The answer written in place of hyper's bare one: its bytes, how many are sent, and the
    /// length of hyper's (what the write reports once all are sent).
    rewritten: Option<(Vec<u8>, usize, usize)>,
}

/// Hyper's bare answer to a request it could not read, in the §4 error shape; `None` for any
/// other write (a handler's error always has a body).
fn in_error_shape(head: &[u8]) -> Option<Vec<u8>> {
    let (status, code, message) = if head.starts_with(b"HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            "headers_too_large",
            "the request's headers are too large or too many",
        )
    } else if head.starts_with(b"HTTP/1.1 400 ") {
        (
            "400 Bad Request",
            "bad_query",
            "the request does not read as HTTP (a path that is not UTF-8, a malformed request line or header)",
        )
    } else {
        return None;
    };
    // Exactly hyper's form (status line, `connection: close`, `content-length: 0`, `date`, in
    // one short write), so that no piece of a body that happens to read like one is touched.
    let has = |line: &[u8]| head.windows(line.len()).any(|w| w == line);
    let bare = head.len() <= 256
        && head.ends_with(b"\r\n\r\n")
        && has(b"\r\nconnection: close\r\n")
        && has(b"\r\ncontent-length: 0\r\n")
        && head.split(|b| *b == b'\n').count() == 6;
    if !bare {
        return None;
    }
    let body =
        format!("{{\"error\":{{\"code\":\"{code}\",\"message\":\"{message}\",\"details\":[]}}}}");
    Some(
        format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: application/json\r\n\
             x-content-type-options: nosniff\r\nx-frame-options: DENY\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl Stalling {
    fn new(inner: TcpStream, stall: Duration) -> Stalling {
        Stalling {
            inner,
            stall,
            deadline: None,
            rewritten: None,
        }
    }

    /// After a write's poll: `Pending` arms the deadline (or reports it passed), progress
    /// disarms it.
    fn watch<T>(
        &mut self,
        polled: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                let stall = self.stall;
                let deadline = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client has taken nothing of the response for too long",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.deadline = None;
                ready
            }
        }
    }
}

impl Stalling {
    /// Writes the answer put in place of hyper's; reports hyper's length once all is sent.
    fn write_rewritten(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            let (answer, sent, replaced) = self.rewritten.as_mut().expect("a rewritten answer");
            if *sent == answer.len() {
                let replaced = *replaced;
                self.rewritten = None;
                return Poll::Ready(Ok(replaced));
            }
            let polled = Pin::new(&mut self.inner).poll_write(cx, &answer[*sent..]);
            match self.watch(polled, cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.rewritten.as_mut().expect("a rewritten answer").1 += n;
                }
                other => return other,
            }
        }
    }
}

impl AsyncRead for Stalling {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalling {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.rewritten.is_none() {
            if let Some(answer) = in_error_shape(buf) {
                self.rewritten = Some((answer, 0, buf.len()));
            }
        }
        if self.rewritten.is_some() {
            return self.write_rewritten(cx);
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut filled = bufs.iter().filter(|buf| !buf.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            return self.poll_write(cx, only);
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
