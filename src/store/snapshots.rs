//! Keeping sled's last good snapshot safe across a failed open.
//!
//! sled 0.34 recovers by reading the newest file of its directory whose name starts with
//! `snap.` and replaying the log from that snapshot's stable position. It writes a new snapshot
//! at every open (and now and then while running) as `snap.<lsn>.generating`, syncs it, renames
//! it to `snap.<lsn>`, and only then removes the older ones. A write that fails half-way (no
//! space) leaves the `.generating` file behind, and since sled's listing does not skip it and it
//! sorts after the complete snapshot of the same or an older position, the next open reads it
//! and fails with "Read corrupted data": one restart on a full disk, and the store no longer
//! opened. Before sled opens a store, this module
//!
//! 1. removes every `snap.*.generating` file: sled never reads one it finished (it renames
//!    them), so such a file is always the leftover of a write that failed;
//! 2. keeps a hard link of each complete snapshot in `snapshot-keep/` beside the store, so that
//!    whatever an open then does to sled's directory, the inode of the last good snapshot lives;
//! 3. links the kept snapshots back when sled's directory has none left.
//!
//! Why that is enough: the kept snapshot is the newest one sled completed before this open.
//! sled removes an older snapshot only after a newer one is complete in its directory, so
//! either sled's directory still holds a complete snapshot at least as new (and step 3 does
//! nothing), or it lost every one outside that protocol, and the kept one is exactly what sled
//! would have read had the failed open never happened.

use super::StoreError;
use std::path::Path;

pub(super) fn protect(sled_dir: &Path, keep_dir: &Path) -> Result<(), StoreError> {
    if !sled_dir.exists() {
        return Ok(());
    }
    let mut complete = Vec::new();
    for entry in std::fs::read_dir(sled_dir).map_err(StoreError::io(sled_dir))? {
        let entry = entry.map_err(StoreError::io(sled_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("snap.") {
            continue;
        }
        if name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing an unfinished sled snapshot (a write that failed)");
            std::fs::remove_file(entry.path()).map_err(StoreError::io(&entry.path()))?;
        } else if !name.ends_with(".in___motion") {
            complete.push(name);
        }
    }
    if complete.is_empty() {
        return restore(sled_dir, keep_dir);
    }
    // Replace the kept links with links of what is complete now.
    std::fs::create_dir_all(keep_dir).map_err(StoreError::io(keep_dir))?;
    for entry in std::fs::read_dir(keep_dir).map_err(StoreError::io(keep_dir))? {
        let path = entry.map_err(StoreError::io(keep_dir))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if !name.is_some_and(|name| complete.contains(&name)) {
            std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
        }
    }
    for name in &complete {
        let kept = keep_dir.join(name);
        if !kept.exists() {
            std::fs::hard_link(sled_dir.join(name), &kept).map_err(StoreError::io(&kept))?;
        }
    }
    sync_dir(keep_dir)
}

/// sled's directory has no complete snapshot: link the kept ones back.
fn restore(sled_dir: &Path, keep_dir: &Path) -> Result<(), StoreError> {
    let Ok(entries) = std::fs::read_dir(keep_dir) else {
        return Ok(()); // Nothing kept: a store that never had a snapshot (sled starts from 0).
    };
    let mut restored = false;
    for entry in entries {
        let path = entry.map_err(StoreError::io(keep_dir))?.path();
        if let Some(name) = path.file_name() {
            tracing::warn!(file = %name.to_string_lossy(), "sled's snapshot was missing; restoring the kept one");
            let target = sled_dir.join(name);
            std::fs::hard_link(&path, &target).map_err(StoreError::io(&target))?;
            restored = true;
        }
    }
    if restored {
        sync_dir(sled_dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(StoreError::io(dir))
}
