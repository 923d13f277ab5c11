//! Whether the store can take writes now, and why not (CONTRACT.md §11, "a store that cannot
//! write says so and recovers").
//!
//! Two causes take writes down while reads go on:
//! - **Low space**: the store's filesystem has less free space than the reserve
//!   (`server.min_free_mib`). A watcher thread measures it every `SPACE_CHECK_INTERVAL_MS`
//!   (one `statvfs`, never one per event); writes come back by themselves once space is freed.
//! - **A failed write** (`apply_batch`, flush or sync): crash-only. Nothing after the failure is
//!   acknowledged; the process that owns the store is told once (`on_failure`), and the service
//!   restarts itself from the store's last durable state.
//!
//! The cause is logged once when it starts and once when it ends, never on every refusal.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How often the watcher measures the free space of the store's filesystem.
pub const SPACE_CHECK_INTERVAL_MS: u64 = 100;

/// Why writes are down, in words for `/readyz` and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WritesDown {
    LowSpace { free_bytes: u64, reserve_bytes: u64 },
    Failed(String),
}

impl std::fmt::Display for WritesDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WritesDown::LowSpace {
                free_bytes,
                reserve_bytes,
            } => write!(
                f,
                "the store's filesystem has {} MiB free, below the reserve of {} MiB \
                 (server.min_free_mib): nothing was stored, retry once space is freed",
                free_bytes >> 20,
                reserve_bytes >> 20
            ),
            WritesDown::Failed(error) => write!(
                f,
                "the store could not write ({error}); nothing was stored, retry: the service \
                 is reopening the store from its last durable state"
            ),
        }
    }
}

type FailureHook = Box<dyn Fn(&str) + Send + Sync>;

pub struct Health {
    dir: PathBuf,
    reserve_bytes: u64,
    free_bytes: AtomicU64,
    low_space: AtomicBool,
    failed: Mutex<Option<String>>,
    failed_flag: AtomicBool,
    on_failure: OnceLock<FailureHook>,
    stop: AtomicBool,
}

impl Health {
    /// Measures `dir`'s filesystem once now and starts the watcher when there is a reserve.
    pub fn start(dir: &Path, reserve_bytes: u64) -> std::io::Result<Arc<Health>> {
        let health = Arc::new(Health {
            dir: dir.to_owned(),
            reserve_bytes,
            free_bytes: AtomicU64::new(free_bytes(dir)?),
            low_space: AtomicBool::new(false),
            failed: Mutex::new(None),
            failed_flag: AtomicBool::new(false),
            on_failure: OnceLock::new(),
            stop: AtomicBool::new(false),
        });
        health.measure();
        if reserve_bytes > 0 {
            // The watcher holds only a weak handle: it ends with the store.
            let weak = Arc::downgrade(&health);
            std::thread::Builder::new()
                .name("impact-space".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_millis(SPACE_CHECK_INTERVAL_MS));
                    match weak.upgrade() {
                        Some(health) if !health.stop.load(Ordering::Relaxed) => health.measure(),
                        _ => return,
                    }
                })?;
        }
        Ok(health)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn measure(&self) {
        let Ok(free) = free_bytes(&self.dir) else {
            return;
        };
        self.free_bytes.store(free, Ordering::Relaxed);
        let low = free < self.reserve_bytes;
        let was_low = self.low_space.swap(low, Ordering::AcqRel);
        if low && !was_low {
            tracing::error!(free_mib = free >> 20, reserve_mib = self.reserve_bytes >> 20,
                "free space on the store's filesystem is below the reserve: refusing submissions until it is freed");
        } else if was_low && !low {
            tracing::warn!(
                free_mib = free >> 20,
                "free space is back above the reserve: taking submissions again"
            );
        }
    }

    /// Why writes are refused now, if they are.
    pub fn writes_down(&self) -> Option<WritesDown> {
        if self.failed_flag.load(Ordering::Acquire) {
            let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            return Some(WritesDown::Failed(failed.clone().unwrap_or_default()));
        }
        if self.low_space.load(Ordering::Acquire) {
            return Some(WritesDown::LowSpace {
                free_bytes: self.free_bytes.load(Ordering::Relaxed),
                reserve_bytes: self.reserve_bytes,
            });
        }
        None
    }

    pub fn free_bytes(&self) -> u64 {
        self.free_bytes.load(Ordering::Relaxed)
    }

    /// A write failed: from now on nothing is acknowledged. The first failure is logged and
    /// handed to the hook (the service restarts itself); later ones add nothing.
    pub fn fail(&self, error: &str) {
        {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            if failed.is_some() {
                return;
            }
            *failed = Some(error.to_owned());
            self.failed_flag.store(true, Ordering::Release);
        }
        tracing::error!(
            error,
            "the store could not write: refusing every write from here on (crash-only)"
        );
        if let Some(hook) = self.on_failure.get() {
            hook(error);
        }
    }

    pub fn has_failed(&self) -> bool {
        self.failed_flag.load(Ordering::Acquire)
    }

    /// What to do once after the first failed write (the service: restart itself). Without
    /// one (offline commands), the failure is an error for what is waiting, and that is all.
    pub fn on_failure(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.on_failure.set(Box::new(hook));
    }
}

/// Bytes an unprivileged writer may still use on `path`'s filesystem.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}
