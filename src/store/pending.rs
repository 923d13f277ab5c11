//! Views written by the log but not yet compacted into their per-Action keys.
//!
//! Every batch writes the records it changed as ONE delta segment (`d` + the batch's first seq)
//! in its atomic write, and puts them here. A compactor thread copies them into their `v` keys
//! off the writer's thread, then deletes the delta segments it covered and moves `m:views_at`
//! in one more atomic write. Reads look here first, then at `v`; at open the delta segments
//! after `m:views_at` are read back into memory, so a crash at any point loses nothing.

use super::{key, read_u64, seq_key, StoreError, DELTA, META_VIEWS_AT, VIEW};
use crate::domain::ids::ActionId;
use foldhash::HashMap;
use sled::IVec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The compactor starts a round once this many bytes of records wait...
const COMPACT_AT_BYTES: usize = 2 << 20;
/// ...or once any have waited this long, so a restart has little to read back.
const COMPACT_AFTER: Duration = Duration::from_secs(2);
/// The writer waits for the compactor above this many bytes (back-pressure, bounded memory).
const WRITER_WAITS_AT_BYTES: usize = 8 << 20;

/// A record as of the delta segment `delta` that carries it.
struct Record {
    delta: u64,
    bytes: IVec,
}

#[derive(Default)]
struct Records {
    by_action: HashMap<ActionId, Record>,
    bytes: usize,
    /// The newest delta segment whose records are here.
    last_delta: u64,
    since: Option<Instant>,
}

#[derive(Default)]
pub(super) struct Pending {
    records: Mutex<Records>,
    /// Held through a compaction round, and by `clear`, so the two never interleave.
    round: Mutex<()>,
    changed: Condvar,
    stop: AtomicBool,
}

/// Encodes the records a batch changed as its delta segment: a count, then for each its id's
/// length (u16), the id, the record's length (u32) and the record.
pub(super) fn encode_delta(records: &[(ActionId, Vec<u8>)]) -> Vec<u8> {
    let total: usize = records
        .iter()
        .map(|(id, bytes)| 6 + id.as_str().len() + bytes.len())
        .sum();
    let mut out = Vec::with_capacity(4 + total);
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for (id, bytes) in records {
        out.extend_from_slice(&(id.as_str().len() as u16).to_be_bytes());
        out.extend_from_slice(id.as_str().as_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

pub(super) fn decode_delta(
    first: u64,
    segment: &IVec,
) -> Result<Vec<(ActionId, IVec)>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("delta segment at seq {first}"));
    let take = |at: &mut usize, n: usize| -> Result<std::ops::Range<usize>, StoreError> {
        let range = *at..at.checked_add(n).ok_or_else(corrupt)?;
        if range.end > segment.len() {
            return Err(corrupt());
        }
        *at = range.end;
        Ok(range)
    };
    let mut at = 0;
    let count = u32::from_be_bytes(segment[take(&mut at, 4)?].try_into().expect("4 bytes"));
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id_len = u16::from_be_bytes(segment[take(&mut at, 2)?].try_into().expect("2 bytes"));
        let id = std::str::from_utf8(&segment[take(&mut at, id_len as usize)?])
            .ok()
            .and_then(|id| ActionId::parse(id).ok())
            .ok_or_else(corrupt)?;
        let len = u32::from_be_bytes(segment[take(&mut at, 4)?].try_into().expect("4 bytes"));
        let range = take(&mut at, len as usize)?;
        records.push((id, segment.subslice(range.start, range.len())));
    }
    Ok(records)
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads back the delta segments after `m:views_at`, oldest first.
    pub(super) fn load(tree: &sled::Db) -> Result<Pending, StoreError> {
        let views_at = match tree.get(META_VIEWS_AT)? {
            Some(value) => read_u64(&value)?,
            None => 0,
        };
        let pending = Pending::default();
        let start = seq_key(DELTA, views_at.saturating_add(1));
        for item in tree.range(start..=seq_key(DELTA, u64::MAX)) {
            let (key, segment) = item?;
            let delta = read_u64(&key[1..])?;
            pending.put(delta, decode_delta(delta, &segment)?);
        }
        Ok(pending)
    }

    pub(super) fn get(&self, action_id: &ActionId) -> Option<IVec> {
        self.lock()
            .by_action
            .get(action_id)
            .map(|record| record.bytes.clone())
    }

    /// Every waiting record, in key order, for reads that scan the views.
    pub(super) fn sorted(&self) -> Vec<(ActionId, IVec)> {
        let mut all: Vec<(ActionId, IVec)> = self
            .lock()
            .by_action
            .iter()
            .map(|(id, record)| (id.clone(), record.bytes.clone()))
            .collect();
        all.sort_by(|a, b| a.0.as_str().as_bytes().cmp(b.0.as_str().as_bytes()));
        all
    }

    /// Takes the records of delta segment `delta`, just written, and wakes the compactor.
    pub(super) fn put(&self, delta: u64, records: Vec<(ActionId, IVec)>) {
        let mut guard = self.lock();
        for (action_id, bytes) in records {
            guard.bytes += bytes.len();
            if let Some(old) = guard.by_action.insert(action_id, Record { delta, bytes }) {
                guard.bytes -= old.bytes.len();
            }
        }
        guard.last_delta = guard.last_delta.max(delta);
        if guard.since.is_none() && !guard.by_action.is_empty() {
            guard.since = Some(Instant::now());
        }
        if guard.bytes >= COMPACT_AT_BYTES {
            self.changed.notify_all();
        }
    }

    /// The writer's back-pressure: waits while the compactor is far behind.
    pub(super) fn wait_for_room(&self) {
        let mut guard = self.lock();
        while guard.bytes >= WRITER_WAITS_AT_BYTES && !self.stop.load(Ordering::Acquire) {
            self.changed.notify_all();
            guard = self
                .changed
                .wait_timeout(guard, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Forgets every waiting record (for `rebuild`, which rewrites every view).
    pub(super) fn clear(&self) {
        let _round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        *self.lock() = Records::default();
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    /// The compactor thread's loop, until `stop`.
    pub(super) fn run_compactor(&self, tree: &sled::Db) {
        loop {
            {
                let mut guard = self.lock();
                loop {
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    let due = guard.bytes >= COMPACT_AT_BYTES
                        || guard
                            .since
                            .is_some_and(|since| since.elapsed() >= COMPACT_AFTER);
                    if due {
                        break;
                    }
                    guard = self
                        .changed
                        .wait_timeout(guard, Duration::from_millis(250))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            if let Err(error) = self.compact(tree) {
                tracing::error!(%error, "compacting the views failed; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    /// One round: copies every waiting record into its `v` key, then, atomically, deletes the
    /// delta segments those came from and moves `m:views_at` past them.
    fn compact(&self, tree: &sled::Db) -> Result<(), StoreError> {
        let _round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        let (records, covered) = {
            let guard = self.lock();
            let records: Vec<(ActionId, IVec)> = guard
                .by_action
                .iter()
                .map(|(id, record)| (id.clone(), record.bytes.clone()))
                .collect();
            (records, guard.last_delta)
        };
        if records.is_empty() {
            return Ok(());
        }
        // One insert at a time: a sled batch holds a lock that would stall the writer's commits,
        // and each record is whole on its own (the delta segments stay until all are in).
        for (action_id, bytes) in records {
            tree.insert(key(VIEW, action_id.as_str().as_bytes()), bytes)?;
        }
        let mut batch = sled::Batch::default();
        for item in tree
            .range(seq_key(DELTA, 0)..=seq_key(DELTA, covered))
            .keys()
        {
            batch.remove(item?);
        }
        batch.insert(META_VIEWS_AT, &covered.to_be_bytes());
        tree.apply_batch(batch)?;
        tree.flush()?;
        let mut guard = self.lock();
        let mut freed = 0;
        guard.by_action.retain(|_, record| {
            let keep = record.delta > covered;
            if !keep {
                freed += record.bytes.len();
            }
            keep
        });
        guard.bytes -= freed;
        guard.since = (!guard.by_action.is_empty()).then(Instant::now);
        self.changed.notify_all();
        Ok(())
    }
}
