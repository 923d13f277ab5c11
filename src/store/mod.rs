//! The only module that knows sled. One tree, keys by prefix (the keyspace is documented in
//! ARCHITECTURE.md). Every write is one `Commit` applied as ONE atomic sled batch; one flush and
//! one sync of its files (`durable.rs`) then cover every batch applied before them: group
//! commit, never a flush per event.

mod durable;
#[cfg(feature = "fault-injection")]
mod fault;
pub mod health;
mod ids;
mod pending;
mod snapshots;

use crate::domain::fold::ActionRecord;
use crate::domain::ids::{ActionId, EventId};
use health::Health;
use ids::{Found, IdMap};
use pending::Pending;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

const LOG: u8 = b'l';
const INDEX: u8 = b'i';
const DELTA: u8 = b'd';
const VIEW: u8 = b'v';
const REJECTION: u8 = b'r';
const REVIEW: u8 = b'w';
const META_LAST_SEQ: &[u8] = b"m:last_seq";
const META_CHECKPOINT: &[u8] = b"m:stream_checkpoint";
const META_LAST_REJECTION: &[u8] = b"m:last_rejection_id";
const META_VIEWS_AT: &[u8] = b"m:views_at";
/// Present while a rebuild is rewriting the views: set (and synced) before it changes
/// anything, removed after everything it wrote is durable.
const META_REBUILDING: &[u8] = b"m:rebuilding";
/// An index segment's entry: the event_id (16 bytes) and the SHA-256 of its content.
const INDEX_ENTRY_BYTES: usize = 48;

/// How long `open` waits for a lock a just-closed handle of this process still holds.
const OPEN_LOCK_RETRIES: u32 = 100;
const OPEN_LOCK_RETRY_MS: u64 = 20;

/// sled's page cache; set explicitly so memory use is a choice, not an accident.
pub const CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("io on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error(
        "the filesystem of {dir} has {free_mib} MiB free, below the reserve of {reserve_mib} MiB \
         (server.min_free_mib): the store was not opened and nothing in it was changed; free \
         some space (or lower server.min_free_mib) and start again"
    )]
    LowSpace {
        dir: PathBuf,
        free_mib: u64,
        reserve_mib: u64,
    },
    #[error(
        "a rebuild of the views in {0} did not finish (it was stopped half-way): run \
         `impact rebuild --data-dir {0}` again before serving"
    )]
    RebuildUnfinished(PathBuf),
}

impl StoreError {
    /// For `map_err`: an I/O error on `path`.
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A rejected message, kept with its raw bytes (CONTRACT.md §2.5, `GET /v1/rejections`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectionRecord {
    pub id: u64,
    pub received_at: String,
    pub source: String,
    pub subject: Option<String>,
    pub stream_seq: Option<u64>,
    pub event_id: Option<String>,
    pub code: String,
    pub message: String,
    /// The payload as text; when it was not UTF-8, its base64 and `raw_encoding: "base64"`.
    pub raw: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_encoding: Option<String>,
    /// Set when the payload was longer than `RAW_KEPT_BYTES`: its whole length in bytes (only
    /// the first `RAW_KEPT_BYTES` are kept, and `raw_truncated` says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_truncated: bool,
}

/// How much of a rejected payload the rejection store keeps (CONTRACT.md §11).
pub const RAW_KEPT_BYTES: usize = 64 * 1024;

/// One event to append: its stored JSON and the keys that index it.
pub struct NewEvent {
    pub seq: u64,
    pub json: Vec<u8>,
    pub event_id: EventId,
    pub hash: [u8; 32],
    /// `None` for a review, which belongs to no Action.
    pub action_id: Option<ActionId>,
    pub review_id: Option<String>,
}

/// Everything one batch changes, written atomically.
#[derive(Default)]
pub struct Commit {
    pub events: Vec<NewEvent>,
    pub records: Vec<Arc<ActionRecord>>,
    pub rejections: Vec<RejectionRecord>,
    /// The last NATS stream sequence this batch consumed.
    pub checkpoint: Option<u64>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.records.is_empty()
            && self.rejections.is_empty()
            && self.checkpoint.is_none()
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tree: sled::Db,
    /// The data directory (the store's files are in `sled/` under it).
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    dir: PathBuf,
    /// Whether writes are possible now (free space, an earlier failed write).
    health: Arc<Health>,
    /// What `sync` makes durable: sled's data file and its blob files.
    durable: durable::Durable,
    /// event_id → seq, read from the index segments on first use, then kept up to date by
    /// `apply`. `None` until first used: reads that never look up an id never pay for it.
    ids: RwLock<Option<IdMap>>,
    pending: Arc<Pending>,
    compactor: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// How many applied batches held a review: what a list of the reviews drawn from this
    /// store is current with.
    reviews_applied: std::sync::atomic::AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.health.stop();
        self.pending.stop();
        if let Some(compactor) = self.compactor.lock().ok().and_then(|mut c| c.take()) {
            let _ = compactor.join();
        }
    }
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
    key
}

fn seq_key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn read_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("short u64".into()))?;
    Ok(u64::from_be_bytes(array))
}

impl Store {
    /// Opens (or creates) the store in `dir` without a free-space reserve.
    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Store::open_reserved(dir, cache_bytes, 0)
    }

    /// Opens the store in `dir`, refusing to touch it while its filesystem has less than
    /// `reserve_bytes` free, and refusing writes later whenever it falls below that again.
    /// A store whose rebuild was stopped half-way is refused (`StoreError::RebuildUnfinished`):
    /// its views are partly old and partly new.
    pub fn open_reserved(
        dir: &Path,
        cache_bytes: u64,
        reserve_bytes: u64,
    ) -> Result<Store, StoreError> {
        let store = Store::open_for_rebuild(dir, cache_bytes, reserve_bytes)?;
        if store.inner.tree.contains_key(META_REBUILDING)? {
            return Err(StoreError::RebuildUnfinished(dir.to_owned()));
        }
        Ok(store)
    }

    /// `open_reserved` without the refusal of an unfinished rebuild: for `rebuild` itself,
    /// which writes every view anew.
    pub fn open_for_rebuild(
        dir: &Path,
        cache_bytes: u64,
        reserve_bytes: u64,
    ) -> Result<Store, StoreError> {
        let existing = std::iter::successors(Some(dir), |dir| dir.parent())
            .find(|dir| dir.exists())
            .unwrap_or(Path::new("."));
        let free = health::free_bytes(existing).map_err(StoreError::io(existing))?;
        if free < reserve_bytes {
            return Err(StoreError::LowSpace {
                dir: dir.to_owned(),
                free_mib: free >> 20,
                reserve_mib: reserve_bytes >> 20,
            });
        }
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        snapshots::protect(&dir.join("sled"), &dir.join("snapshot-keep"))?;
        let config = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Every batch is flushed and fsynced by `commit`; sled's own timer adds nothing.
            .flush_every_ms(None);
        // sled releases its file lock from a background thread after the last handle is dropped:
        // a store closed an instant ago in this process may still be locked for a moment.
        let mut attempts = 0;
        let tree = loop {
            match config.open() {
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock")
                        && attempts < OPEN_LOCK_RETRIES =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(OPEN_LOCK_RETRY_MS));
                }
                result => break result?,
            }
        };
        let durable = durable::Durable::open(&dir.join("sled"))?;
        let pending = Arc::new(Pending::load(&tree)?);
        let compactor = {
            let (pending, tree) = (pending.clone(), tree.clone());
            std::thread::Builder::new()
                .name("impact-compactor".into())
                .spawn(move || pending.run_compactor(&tree))
                .map_err(StoreError::io(dir))?
        };
        let health = Health::start(dir, reserve_bytes).map_err(StoreError::io(dir))?;
        Ok(Store {
            inner: Arc::new(Inner {
                tree,
                dir: dir.to_owned(),
                health,
                durable,
                ids: RwLock::new(None),
                pending,
                compactor: Mutex::new(Some(compactor)),
                reviews_applied: Default::default(),
            }),
        })
    }

    /// Whether writes are possible now, and the hook for a failed write.
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    fn meta(&self, name: &[u8]) -> Result<Option<u64>, StoreError> {
        self.inner
            .tree
            .get(name)?
            .map(|value| read_u64(&value))
            .transpose()
    }

    pub fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.meta(META_LAST_SEQ)?.unwrap_or(0))
    }

    /// The last NATS stream sequence applied, in the same atomic write as its events.
    pub fn checkpoint(&self) -> Result<u64, StoreError> {
        Ok(self.meta(META_CHECKPOINT)?.unwrap_or(0))
    }

    pub fn last_rejection_id(&self) -> Result<u64, StoreError> {
        Ok(self.meta(META_LAST_REJECTION)?.unwrap_or(0))
    }

    /// Where `event_id` is in the log, and the hash of its content.
    pub fn event_index(&self, event_id: &EventId) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        let found = {
            let ids = self.inner.ids.read().unwrap_or_else(|e| e.into_inner());
            match ids.as_ref() {
                Some(ids) => ids.get(event_id),
                None => {
                    drop(ids);
                    let ids = self.load_ids()?;
                    ids.as_ref().expect("loaded").get(event_id)
                }
            }
        };
        let (seq, exact) = match found {
            Found::Exact(seq) => (seq, true),
            Found::Candidate(seq) => (seq, false),
            Found::Absent => return Ok(None),
        };
        let (first, segment) = self
            .segment_at(INDEX, seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("no index segment for seq {seq}")))?;
        let at = (seq - first) as usize * INDEX_ENTRY_BYTES;
        let entry = segment
            .get(at..at + INDEX_ENTRY_BYTES)
            .ok_or_else(|| StoreError::Corrupt(format!("index entry of seq {seq}")))?;
        if entry[..16] != *event_id.as_bytes() {
            // A candidate is another id that shares this one's key; an exact hit must match.
            if exact {
                return Err(StoreError::Corrupt(format!("index entry of seq {seq}")));
            }
            return Ok(None);
        }
        Ok(Some((seq, entry[16..].try_into().expect("32 bytes"))))
    }

    /// Reads every index segment into the id map, once.
    fn load_ids(&self) -> Result<std::sync::RwLockWriteGuard<'_, Option<IdMap>>, StoreError> {
        let mut ids = self.inner.ids.write().unwrap_or_else(|e| e.into_inner());
        if ids.is_none() {
            let mut map = IdMap::with_capacity(self.last_seq()? as usize);
            for item in self.inner.tree.scan_prefix([INDEX]) {
                let (key, segment) = item?;
                let first = read_u64(&key[1..])?;
                for (n, entry) in segment.chunks_exact(INDEX_ENTRY_BYTES).enumerate() {
                    let id = EventId::from_bytes(entry[..16].try_into().expect("16 bytes"));
                    map.insert(id, first + n as u64);
                }
            }
            *ids = Some(map);
        }
        Ok(ids)
    }

    pub fn record(&self, action_id: &ActionId) -> Result<Option<ActionRecord>, StoreError> {
        self.record_raw(action_id)?
            .map(|bytes| decode_record(&bytes))
            .transpose()
    }

    /// The record's bytes: the newest written by a batch, else the compacted one.
    pub fn record_raw(&self, action_id: &ActionId) -> Result<Option<sled::IVec>, StoreError> {
        if let Some(bytes) = self.inner.pending.get(action_id) {
            return Ok(Some(bytes));
        }
        Ok(self
            .inner
            .tree
            .get(key(VIEW, action_id.as_str().as_bytes()))?)
    }

    /// Every view record, in action_id order, as (action_id bytes, record bytes): the records
    /// waiting in memory merged with the compacted ones, the waiting one winning a tie.
    fn view_entries(&self) -> impl Iterator<Item = Result<(Vec<u8>, sled::IVec), StoreError>> + '_ {
        use std::cmp::Ordering;
        let mut pending = self.inner.pending.sorted().into_iter().peekable();
        let mut compacted = self.inner.tree.scan_prefix([VIEW]).peekable();
        std::iter::from_fn(move || {
            let pending_first = match (pending.peek(), compacted.peek()) {
                (None, None) => return None,
                (Some((id, _)), Some(Ok((key, _)))) => {
                    match id.as_str().as_bytes().cmp(&key[1..]) {
                        Ordering::Less => true,
                        Ordering::Equal => {
                            compacted.next();
                            true
                        }
                        Ordering::Greater => false,
                    }
                }
                (Some(_), None) => true,
                (_, Some(_)) => false,
            };
            if pending_first {
                let (id, bytes) = pending.next().expect("peeked");
                return Some(Ok((id.as_str().as_bytes().to_vec(), bytes)));
            }
            compacted.next().map(|item| {
                item.map(|(key, bytes)| (key[1..].to_vec(), bytes))
                    .map_err(StoreError::from)
            })
        })
    }

    /// The stored view record's bytes, for byte-for-byte comparisons.
    pub fn record_bytes(
        &self,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        self.view_entries()
            .map(|item| item.map(|(id, bytes)| (id, bytes.to_vec())))
    }

    pub fn records(&self) -> impl Iterator<Item = Result<ActionRecord, StoreError>> + '_ {
        self.view_entries().map(|item| decode_record(&item?.1))
    }

    /// The segment under `prefix` (log or index) that holds `seq`.
    fn segment_at(&self, prefix: u8, seq: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        let Some(item) = self
            .inner
            .tree
            .range(seq_key(prefix, 0)..=seq_key(prefix, seq))
            .next_back()
        else {
            return Ok(None);
        };
        let (key, value) = item?;
        Ok(Some((read_u64(&key[1..])?, value)))
    }

    pub fn event_json(&self, seq: u64) -> Result<Option<sled::IVec>, StoreError> {
        let Some((first, segment)) = self.segment_at(LOG, seq)? else {
            return Ok(None);
        };
        Ok(Segment::new(first, segment)?.get(seq))
    }

    /// The log after `after`, in `seq` order, as stored JSON (slices of the segments, no copy).
    pub fn log_after(
        &self,
        after: u64,
    ) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        let start = match self.segment_at(LOG, after.saturating_add(1)) {
            Ok(Some((first, _))) => first,
            _ => after.saturating_add(1),
        };
        self.inner
            .tree
            .range(seq_key(LOG, start)..=seq_key(LOG, u64::MAX))
            .flat_map(move |item| -> Vec<Result<(u64, sled::IVec), StoreError>> {
                let segment = item
                    .map_err(StoreError::from)
                    .and_then(|(key, value)| Segment::new(read_u64(&key[1..])?, value));
                match segment {
                    Ok(segment) => segment
                        .events()
                        .filter(|(seq, _)| *seq > after)
                        .map(Ok)
                        .collect(),
                    Err(error) => vec![Err(error)],
                }
            })
    }

    pub fn rejections_after(
        &self,
        after: u64,
    ) -> impl Iterator<Item = Result<RejectionRecord, StoreError>> + '_ {
        let start = seq_key(REJECTION, after.saturating_add(1));
        let end = seq_key(REJECTION, u64::MAX);
        self.inner.tree.range(start..=end).map(|item| {
            let (_, value) = item?;
            serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
    }

    /// Newest rejections first from the one before id `before`, for finding the fate of a
    /// recent message and for the rejections page.
    pub fn rejections_newest_first(
        &self,
        before: u64,
    ) -> impl Iterator<Item = Result<RejectionRecord, StoreError>> + '_ {
        let start = seq_key(REJECTION, 0);
        let end = seq_key(REJECTION, before);
        self.inner.tree.range(start..end).rev().map(|item| {
            let (_, value) = item?;
            serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
    }

    /// `review_id` → its seq in the log.
    pub fn review_seq(&self, review_id: &str) -> Result<Option<u64>, StoreError> {
        self.inner
            .tree
            .get(key(REVIEW, review_id.as_bytes()))?
            .map(|value| read_u64(&value))
            .transpose()
    }

    /// Every review's seq, in review_id order.
    /// Moves on each time a batch holding a review is applied: a list of the reviews read when
    /// it was `n` is current while it stays `n`.
    pub fn reviews_applied(&self) -> u64 {
        self.inner
            .reviews_applied
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn review_seqs(&self) -> Result<Vec<u64>, StoreError> {
        self.inner
            .tree
            .scan_prefix([REVIEW])
            .map(|item| read_u64(&item?.1))
            .collect()
    }

    /// Applies `commit` as one atomic batch. It is durable once a later `sync` returns; the
    /// in-memory indexes show it at once, so the next batch can be built on it meanwhile.
    pub fn apply(&self, commit: &Commit) -> Result<(), StoreError> {
        if commit.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut last_seq = None;
        let first_seq = commit.events.first().map(|event| event.seq);
        let mut index = Vec::with_capacity(INDEX_ENTRY_BYTES * commit.events.len());
        for event in &commit.events {
            assert!(
                last_seq.is_none_or(|last| last + 1 == event.seq),
                "a segment's seqs are contiguous"
            );
            index.extend_from_slice(event.event_id.as_bytes());
            index.extend_from_slice(&event.hash);
            if let Some(review_id) = &event.review_id {
                batch.insert(key(REVIEW, review_id.as_bytes()), &event.seq.to_be_bytes());
            }
            last_seq = Some(event.seq);
        }
        let records: Vec<(ActionId, Vec<u8>)> = commit
            .records
            .iter()
            .map(|record| (record.action_id.clone(), encode_record(record)))
            .collect();
        if let Some(first) = first_seq {
            batch.insert(
                &seq_key(LOG, first),
                encode_segment(commit.events.iter().map(|event| event.json.as_slice())),
            );
            batch.insert(&seq_key(INDEX, first), index);
        }
        let delta = match first_seq {
            Some(first) if !records.is_empty() => {
                let delta = sled::IVec::from(pending::encode_delta(&records));
                batch.insert(&seq_key(DELTA, first), delta.clone());
                Some((first, delta))
            }
            _ => None,
        };
        assert!(
            records.is_empty() || first_seq.is_some(),
            "records change only with events"
        );
        for rejection in &commit.rejections {
            let json = serde_json::to_vec(rejection).expect("a rejection serializes");
            batch.insert(&seq_key(REJECTION, rejection.id), json);
        }
        if let Some(last) = commit.rejections.last() {
            batch.insert(META_LAST_REJECTION, &last.id.to_be_bytes());
        }
        if let Some(seq) = last_seq {
            batch.insert(META_LAST_SEQ, &seq.to_be_bytes());
        }
        if let Some(checkpoint) = commit.checkpoint {
            batch.insert(META_CHECKPOINT, &checkpoint.to_be_bytes());
        }
        #[cfg(feature = "fault-injection")]
        fault::point(&self.inner.dir, "apply")?;
        self.inner.tree.apply_batch(batch)?;
        if commit.events.iter().any(|event| event.review_id.is_some()) {
            self.inner
                .reviews_applied
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        if let Some(ids) = self
            .inner
            .ids
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            for event in &commit.events {
                ids.insert(event.event_id, event.seq);
            }
        }
        if let Some((first, delta)) = delta {
            // What memory serves is what was written, read back as at open.
            self.inner
                .pending
                .put(first, pending::decode_delta(first, &delta)?);
            self.inner.pending.wait_for_room();
        }
        Ok(())
    }

    /// Flushes sled and makes durable everything it had written (see `durable.rs`: sled's
    /// own flush syncs neither its blob files nor the drive's cache).
    pub fn sync(&self) -> Result<(), StoreError> {
        #[cfg(feature = "fault-injection")]
        fault::point(&self.inner.dir, "sync")?;
        #[cfg(feature = "fault-injection")]
        fault::slow_sync(&self.inner.dir);
        self.inner.durable.sync(&self.inner.tree)
    }

    /// Marks the store as being rebuilt, durably, before the rebuild changes anything.
    pub fn begin_rebuild(&self) -> Result<(), StoreError> {
        self.inner.tree.insert(META_REBUILDING, &[])?;
        self.sync()
    }

    /// Makes what the rebuild wrote durable, then removes its mark, durably.
    pub fn finish_rebuild(&self) -> Result<(), StoreError> {
        self.sync()?;
        self.inner.tree.remove(META_REBUILDING)?;
        self.sync()
    }

    /// Forgets every view written by a batch but not yet compacted, on disk and in memory
    /// (for `rebuild`, which then writes every record anew).
    pub fn discard_pending_views(&self) -> Result<(), StoreError> {
        self.inner.pending.clear();
        let mut batch = sled::Batch::default();
        for item in self.inner.tree.scan_prefix([DELTA]).keys() {
            batch.remove(item?);
        }
        batch.insert(META_VIEWS_AT, &self.last_seq()?.to_be_bytes());
        self.inner.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Removes the view records of Actions `keep` refuses (for `rebuild`, after it wrote anew
    /// every record the log gives); the log and its indexes stay.
    pub fn drop_views_except(&self, keep: impl Fn(&[u8]) -> bool) -> Result<u64, StoreError> {
        let mut dropped = 0;
        let mut batch = sled::Batch::default();
        for item in self.inner.tree.scan_prefix([VIEW]).keys() {
            let key = item?;
            if !keep(&key[1..]) {
                batch.remove(key);
                dropped += 1;
            }
        }
        self.inner.tree.apply_batch(batch)?;
        Ok(dropped)
    }

    /// Writes encoded view records without touching the log (for `rebuild`).
    pub fn put_record_bytes(&self, records: &[(ActionId, Vec<u8>)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (action_id, bytes) in records {
            batch.insert(key(VIEW, action_id.as_str().as_bytes()), bytes.as_slice());
        }
        Ok(self.inner.tree.apply_batch(batch)?)
    }

    /// Raw sled access for the benchmarks' ceilings.
    pub fn raw(&self) -> &sled::Db {
        &self.inner.tree
    }
}

/// A log segment: the events of one batch under the key of its first seq, as a count, each
/// event's length, then the events' JSON one after another. One sled write per batch.
fn encode_segment<'a>(events: impl ExactSizeIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let count = events.len();
    let total: usize = events.clone().map(<[u8]>::len).sum();
    let mut bytes = Vec::with_capacity(4 + 4 * count + total);
    bytes.extend_from_slice(&(count as u32).to_be_bytes());
    for event in events.clone() {
        bytes.extend_from_slice(&(event.len() as u32).to_be_bytes());
    }
    for event in events {
        bytes.extend_from_slice(event);
    }
    bytes
}

struct Segment {
    first: u64,
    bytes: sled::IVec,
    count: usize,
}

impl Segment {
    fn new(first: u64, bytes: sled::IVec) -> Result<Segment, StoreError> {
        let count = bytes
            .get(..4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("four bytes")) as usize);
        match count {
            Some(count) if bytes.len() >= 4 + 4 * count => Ok(Segment {
                first,
                bytes,
                count,
            }),
            _ => Err(StoreError::Corrupt(format!("log segment at seq {first}"))),
        }
    }

    fn length(&self, index: usize) -> usize {
        let at = 4 + 4 * index;
        u32::from_be_bytes(self.bytes[at..at + 4].try_into().expect("four bytes")) as usize
    }

    fn events(&self) -> impl Iterator<Item = (u64, sled::IVec)> + '_ {
        let mut offset = 4 + 4 * self.count;
        (0..self.count).map(move |index| {
            let length = self.length(index);
            let event = self.bytes.subslice(offset, length);
            offset += length;
            (self.first + index as u64, event)
        })
    }

    /// One event, found by adding up the lengths before it (one slice made, not one per event
    /// before it).
    fn get(&self, seq: u64) -> Option<sled::IVec> {
        let index = seq.checked_sub(self.first)? as usize;
        if index >= self.count {
            return None;
        }
        let offset = 4 + 4 * self.count + (0..index).map(|i| self.length(i)).sum::<usize>();
        Some(self.bytes.subslice(offset, self.length(index)))
    }
}

pub fn encode_record(record: &ActionRecord) -> Vec<u8> {
    postcard::to_stdvec(record).expect("a record serializes")
}

pub fn decode_record(bytes: &[u8]) -> Result<ActionRecord, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("view record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_gives_each_event_by_its_seq() {
        let events: Vec<Vec<u8>> = (0..50).map(|n| vec![b'a' + n as u8 % 26; n]).collect();
        let bytes = encode_segment(events.iter().map(Vec::as_slice));
        let segment = Segment::new(100, sled::IVec::from(bytes)).unwrap();
        for (n, event) in events.iter().enumerate() {
            assert_eq!(
                &*segment.get(100 + n as u64).unwrap(),
                event.as_slice(),
                "{n}"
            );
        }
        assert!(segment.get(99).is_none() && segment.get(150).is_none());
        let all: Vec<(u64, sled::IVec)> = segment.events().collect();
        assert_eq!(all.len(), 50);
        assert_eq!(&*all[49].1, events[49].as_slice());
    }
}
