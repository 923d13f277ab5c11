//! The only module that knows sled. One tree, keys by prefix (the keyspace is documented in
//! ARCHITECTURE.md). Every write is one `Commit` applied as ONE atomic sled batch, then flushed
//! and fsynced once: group commit, never a flush per event.

use crate::domain::fold::ActionRecord;
use crate::domain::ids::{ActionId, EventId};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

const LOG: u8 = b'l';
const EVENT_ID: u8 = b'e';
const VIEW: u8 = b'v';
const REJECTION: u8 = b'r';
const REVIEW: u8 = b'w';
const META_LAST_SEQ: &[u8] = b"m:last_seq";
const META_CHECKPOINT: &[u8] = b"m:stream_checkpoint";
const META_LAST_REJECTION: &[u8] = b"m:last_rejection_id";

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
}

/// A rejected message, kept with its raw bytes (CONTRACT.md §2.5, `GET /v1/rejections`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

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
    pub records: Vec<ActionRecord>,
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
    tree: sled::Db,
    dir: PathBuf,
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
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
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
        Ok(Store {
            tree,
            dir: dir.to_owned(),
        })
    }

    fn meta(&self, name: &[u8]) -> Result<Option<u64>, StoreError> {
        self.tree
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
        let Some(value) = self.tree.get(key(EVENT_ID, event_id.as_bytes()))? else {
            return Ok(None);
        };
        let hash: [u8; 32] = value
            .get(8..40)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt("event index".into()))?;
        Ok(Some((read_u64(&value)?, hash)))
    }

    pub fn record(&self, action_id: &ActionId) -> Result<Option<ActionRecord>, StoreError> {
        self.tree
            .get(key(VIEW, action_id.as_str().as_bytes()))?
            .map(|bytes| decode_record(&bytes))
            .transpose()
    }

    pub fn record_raw(&self, action_id: &ActionId) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.tree.get(key(VIEW, action_id.as_str().as_bytes()))?)
    }

    /// The stored view record's bytes, for byte-for-byte comparisons.
    pub fn record_bytes(
        &self,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        self.tree.scan_prefix([VIEW]).map(|item| {
            item.map(|(key, value)| (key[1..].to_vec(), value.to_vec()))
                .map_err(StoreError::from)
        })
    }

    pub fn records(&self) -> impl Iterator<Item = Result<ActionRecord, StoreError>> + '_ {
        self.tree
            .scan_prefix([VIEW])
            .map(|item| decode_record(&item?.1))
    }

    /// The segment holding `seq`: its first seq and its bytes.
    fn segment_of(&self, seq: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        let Some(item) = self
            .tree
            .range(seq_key(LOG, 0)..=seq_key(LOG, seq))
            .next_back()
        else {
            return Ok(None);
        };
        let (key, value) = item?;
        Ok(Some((read_u64(&key[1..])?, value)))
    }

    pub fn event_json(&self, seq: u64) -> Result<Option<sled::IVec>, StoreError> {
        let Some((first, segment)) = self.segment_of(seq)? else {
            return Ok(None);
        };
        Ok(Segment::new(first, segment)?.get(seq))
    }

    /// The log after `after`, in `seq` order, as stored JSON (slices of the segments, no copy).
    pub fn log_after(
        &self,
        after: u64,
    ) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        let start = match self.segment_of(after.saturating_add(1)) {
            Ok(Some((first, _))) => first,
            _ => after.saturating_add(1),
        };
        self.tree
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
        self.tree.range(start..=end).map(|item| {
            let (_, value) = item?;
            serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
    }

    /// Newest rejections first, for finding the fate of a recent message.
    pub fn rejections_newest_first(
        &self,
    ) -> impl Iterator<Item = Result<RejectionRecord, StoreError>> + '_ {
        self.tree.scan_prefix([REJECTION]).rev().map(|item| {
            let (_, value) = item?;
            serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
    }

    /// `review_id` → its seq in the log.
    pub fn review_seq(&self, review_id: &str) -> Result<Option<u64>, StoreError> {
        self.tree
            .get(key(REVIEW, review_id.as_bytes()))?
            .map(|value| read_u64(&value))
            .transpose()
    }

    /// Every review's seq, in review_id order.
    pub fn review_seqs(&self) -> Result<Vec<u64>, StoreError> {
        self.tree
            .scan_prefix([REVIEW])
            .map(|item| read_u64(&item?.1))
            .collect()
    }

    /// Applies `commit` as one atomic batch and makes it durable.
    pub fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        if commit.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut last_seq = None;
        if let Some(first) = commit.events.first() {
            batch.insert(
                &seq_key(LOG, first.seq),
                encode_segment(commit.events.iter().map(|event| event.json.as_slice())),
            );
        }
        for event in &commit.events {
            assert!(
                last_seq.is_none_or(|last| last + 1 == event.seq),
                "a segment's seqs are contiguous"
            );
            let mut index = Vec::with_capacity(40);
            index.extend_from_slice(&event.seq.to_be_bytes());
            index.extend_from_slice(&event.hash);
            batch.insert(key(EVENT_ID, event.event_id.as_bytes()), index);
            if let Some(review_id) = &event.review_id {
                batch.insert(key(REVIEW, review_id.as_bytes()), &event.seq.to_be_bytes());
            }
            last_seq = Some(event.seq);
        }
        for record in &commit.records {
            batch.insert(
                key(VIEW, record.action_id.as_str().as_bytes()),
                encode_record(record),
            );
        }
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
        self.tree.apply_batch(batch)?;
        self.sync()
    }

    /// sled's `flush` ends in `sync_file_range`, which neither syncs metadata nor the drive's
    /// cache; an fsync of its data file afterwards does.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.tree.flush()?;
        let path = self.dir.join("sled").join("db");
        let file = File::open(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        file.sync_all()
            .map_err(|source| StoreError::Io { path, source })
    }

    /// Removes the view records of Actions `keep` refuses (for `rebuild`, after it wrote anew
    /// every record the log gives); the log and its indexes stay.
    pub fn drop_views_except(&self, keep: impl Fn(&[u8]) -> bool) -> Result<u64, StoreError> {
        let mut dropped = 0;
        let mut batch = sled::Batch::default();
        for item in self.tree.scan_prefix([VIEW]).keys() {
            let key = item?;
            if !keep(&key[1..]) {
                batch.remove(key);
                dropped += 1;
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(dropped)
    }

    /// Writes encoded view records without touching the log (for `rebuild`).
    pub fn put_record_bytes(&self, records: &[(ActionId, Vec<u8>)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (action_id, bytes) in records {
            batch.insert(key(VIEW, action_id.as_str().as_bytes()), bytes.as_slice());
        }
        Ok(self.tree.apply_batch(batch)?)
    }

    /// Raw sled access for the benchmarks' ceilings.
    pub fn raw(&self) -> &sled::Db {
        &self.tree
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

    fn get(&self, seq: u64) -> Option<sled::IVec> {
        let index = seq.checked_sub(self.first)? as usize;
        (index < self.count).then(|| self.events().nth(index).expect("index < count").1)
    }
}

pub fn encode_record(record: &ActionRecord) -> Vec<u8> {
    postcard::to_stdvec(record).expect("a record serializes")
}

pub fn decode_record(bytes: &[u8]) -> Result<ActionRecord, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("view record: {e}")))
}
