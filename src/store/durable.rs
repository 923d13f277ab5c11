//! Making what sled wrote durable, file by file.
//!
//! sled 0.34's `flush` ends in `sync_file_range`, which syncs neither metadata nor the drive's
//! cache, and sled writes any log message over 128 KiB (a log segment, say, or a node holding
//! one) to a file of its own under `blobs/`, named by its log sequence number, that it never
//! syncs. A sync here is: list the blob files, flush sled, `fdatasync` every blob file listed
//! that an earlier sync did not, the `blobs/` directory when there were any (their entries),
//! and sled's data file.
//!
//! Why list before the flush: a blob file is created and written while its log reservation is
//! open, and `flush` waits for every reservation made before it was called, so every file
//! listed before it is whole once it returns. A file created after the listing belongs to
//! writes that the next sync covers; the batches this sync answers were all written before it
//! began. Only the store's own files are synced: `syncfs` (the earlier way) also wrote out every
//! other process's dirty pages on the same filesystem, a co-located nats-server's among them.
//! The listing is cheap: sled folds blobs into the nodes it rewrites and removes the old files
//! (66 files in the 1M-event bench store; listing them takes ~50 µs).

use super::StoreError;
use std::collections::HashSet;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(super) struct Durable {
    /// sled's data file, open for `fdatasync`.
    data_file: File,
    data_path: PathBuf,
    blobs: PathBuf,
    /// The blob files (by their log sequence number) synced since the store was opened; the
    /// lock also keeps two syncs from interleaving.
    synced: Mutex<HashSet<u64>>,
}

impl Durable {
    /// `sled_dir` is the directory sled was opened on.
    pub(super) fn open(sled_dir: &Path) -> Result<Durable, StoreError> {
        let data_path = sled_dir.join("db");
        let data_file = File::open(&data_path).map_err(StoreError::io(&data_path))?;
        Ok(Durable {
            data_file,
            data_path,
            blobs: sled_dir.join("blobs"),
            synced: Mutex::new(HashSet::new()),
        })
    }

    /// Flushes `tree` and makes durable everything it had written when this was called.
    pub(super) fn sync(&self, tree: &sled::Db) -> Result<(), StoreError> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let listed = self.list_blobs()?;
        tree.flush()?;
        let mut new_entries = false;
        for lsn in &listed {
            if synced.contains(lsn) {
                continue;
            }
            let path = self.blobs.join(lsn.to_string());
            match File::open(&path) {
                Ok(file) => file.sync_data().map_err(StoreError::io(&path))?,
                // Removed since the listing: sled no longer needs it.
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => return Err(StoreError::io(&path)(error)),
            }
            new_entries = true;
        }
        if new_entries {
            File::open(&self.blobs)
                .and_then(|dir| dir.sync_all())
                .map_err(StoreError::io(&self.blobs))?;
        }
        self.data_file
            .sync_data()
            .map_err(StoreError::io(&self.data_path))?;
        // What was listed is synced now; files removed since drop out of the set.
        *synced = listed;
        Ok(())
    }

    fn list_blobs(&self) -> Result<HashSet<u64>, StoreError> {
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(HashSet::new()),
            Err(error) => return Err(StoreError::io(&self.blobs)(error)),
        };
        let mut listed = HashSet::new();
        for entry in entries {
            // sled names each blob file by its log sequence number; it ignores anything else.
            if let Some(lsn) = entry
                .map_err(StoreError::io(&self.blobs))?
                .file_name()
                .to_str()
                .and_then(|n| n.parse().ok())
            {
                listed.insert(lsn);
            }
        }
        Ok(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_covers_every_blob_file_written_before_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let tree = sled::Config::new()
            .path(dir.path().join("sled"))
            .open()
            .unwrap();
        let durable = Durable::open(&dir.path().join("sled")).unwrap();
        // Over sled's 128 KiB blob threshold: written to a file of its own.
        tree.insert(b"first", vec![7u8; 200 * 1024]).unwrap();
        durable.sync(&tree).unwrap();
        let first = durable.list_blobs().unwrap();
        assert!(!first.is_empty(), "the value went to a blob file");
        assert_eq!(*durable.synced.lock().unwrap(), first);

        tree.insert(b"second", vec![8u8; 200 * 1024]).unwrap();
        let unsynced: Vec<u64> = durable
            .list_blobs()
            .unwrap()
            .difference(&durable.synced.lock().unwrap())
            .copied()
            .collect();
        assert!(
            !unsynced.is_empty(),
            "a new blob file waits for the next sync"
        );
        durable.sync(&tree).unwrap();
        let synced = durable.synced.lock().unwrap();
        assert!(unsynced.iter().all(|lsn| synced.contains(lsn)));
        assert_eq!(*synced, durable.list_blobs().unwrap());
    }
}
