//! The service restarting itself after a failed write (CONTRACT.md §11: "writes come back by
//! themselves once the cause is gone; a restart of the process by the service itself is
//! allowed").
//!
//! sled 0.34 does not recover from an I/O error inside `apply_batch` or a flush, so a failed
//! write is crash-only: the writer answers `503` to everything waiting and writes nothing more
//! (`store::health`), and after a short grace, time for those answers to reach their callers,
//! the process replaces itself with a fresh copy of the same binary and arguments (`execve`),
//! which opens the store from its last durable state, as after `kill -9`. The listening socket
//! is handed over across the exec (its descriptor number in `IMPACT_LISTEN_FD`), so the port
//! stays the same and connections made meanwhile wait in its backlog instead of being refused.
//! Each restart in a row waits twice as long as the one before (up to `RESTART_DELAY_MS_MAX`),
//! so a store that fails again at once does not spin.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Restarts in a row, read from the environment at start and cleared after a while of service.
static RESTARTS: AtomicU32 = AtomicU32::new(0);

/// The listening socket handed over by the process this one replaced (it stays in the
/// environment: the process starts no other program, and a restart sets it anew).
pub const LISTEN_FD_ENV: &str = "IMPACT_LISTEN_FD";
/// How many restarts in a row led to this process.
const RESTARTS_ENV: &str = "IMPACT_RESTARTS";
const RESTART_DELAY_MS_MIN: u64 = 500;
const RESTART_DELAY_MS_MAX: u64 = 30_000;
/// The exit code when the process cannot replace itself: a supervisor should restart it.
pub const EXIT_RESTART_FAILED: i32 = 70;

/// The socket the previous process listened on, if it handed one over.
pub fn inherited_listener() -> anyhow::Result<Option<std::net::TcpListener>> {
    let restarts = std::env::var(RESTARTS_ENV)
        .ok()
        .and_then(|text| text.parse().ok());
    RESTARTS.store(restarts.unwrap_or(0), Ordering::Relaxed);
    let Some(text) = std::env::var_os(LISTEN_FD_ENV) else {
        return Ok(None);
    };
    let fd: RawFd = text
        .to_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{LISTEN_FD_ENV}={text:?} is not a descriptor number"))?;
    let mut accepting: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid out-pointer and its length; a bad descriptor is an error, not UB.
    let status = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut length,
        )
    };
    if status != 0 || accepting == 0 {
        anyhow::bail!("{LISTEN_FD_ENV}={fd} is not a listening socket");
    }
    set_close_on_exec(fd, true);
    // SAFETY: the descriptor is a listening socket that nothing else in this process owns.
    let listener = unsafe { <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// After a failed write: waits for the answers to go out, then replaces the process. Runs on a
/// thread of its own; returns only if the exec failed, by exiting.
pub fn restart_after_failure(listener: RawFd, error: &str) -> ! {
    let restarts = RESTARTS.load(Ordering::Relaxed);
    let delay = RESTART_DELAY_MS_MIN
        .saturating_mul(1 << restarts.min(16))
        .min(RESTART_DELAY_MS_MAX);
    tracing::error!(
        error,
        restart_in_ms = delay,
        "restarting to reopen the store from its last durable state"
    );
    std::thread::sleep(Duration::from_millis(delay));
    set_close_on_exec(listener, false);
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| "/proc/self/exe".into());
    let failure = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(LISTEN_FD_ENV, listener.to_string())
        .env(RESTARTS_ENV, (restarts + 1).to_string())
        .exec();
    tracing::error!(error = %failure, "could not restart; exiting for the supervisor to restart");
    std::process::exit(EXIT_RESTART_FAILED);
}

/// A process that has served for a while after a restart is no longer in a row of them.
pub fn forget_restarts_after(duration: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        RESTARTS.store(0, Ordering::Relaxed);
    });
}

fn set_close_on_exec(fd: RawFd, close: bool) {
    // SAFETY: F_GETFD/F_SETFD on a descriptor this process owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            let flags = if close {
                flags | libc::FD_CLOEXEC
            } else {
                flags & !libc::FD_CLOEXEC
            };
            libc::fcntl(fd, libc::F_SETFD, flags);
        }
    }
}
