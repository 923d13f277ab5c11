//! Fault points for the tests, compiled only with the `fault-injection` feature (the suite
//! builds with it; a release build has no such code). A test makes the store's next write or
//! sync fail by creating the file `fault-<point>` in the data directory; the fault fires once
//! and removes the file. A file `fault-slow-sync` holding a number of milliseconds makes every
//! sync wait that long before sled's flush, as a slow drive would: what was written meanwhile
//! stays in sled's buffers, in memory only, so a crash then loses it.

use super::StoreError;
use std::path::Path;

pub(super) fn point(dir: &Path, name: &str) -> Result<(), StoreError> {
    let path = dir.join(format!("fault-{name}"));
    if std::fs::remove_file(&path).is_ok() {
        return Err(StoreError::Io {
            path,
            source: std::io::Error::other(format!("injected {name} failure")),
        });
    }
    Ok(())
}

pub(super) fn slow_sync(dir: &Path) {
    if let Ok(text) = std::fs::read_to_string(dir.join("fault-slow-sync")) {
        if let Ok(ms) = text.trim().parse() {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}
