//! The single writer: the only code that appends to the log. Submissions arrive on a bounded
//! channel from the bus (embedded: the HTTP handlers; NATS: the stream consumer); the writer
//! takes as many as are waiting, up to `BATCH_EVENTS_MAX` events, validates each against the
//! schemas and its Action's record, and hands the whole batch — events, indexes, views,
//! rejections and the stream checkpoint — to the committer thread, which writes it as one
//! atomic sled batch with one flush and sync, then answers every submission and wakes the
//! waiters with the new log position. The writer builds the next batch meanwhile.

mod batch;

use crate::domain::event::StoredEvent;
use crate::domain::validate::{Origin, Parsed, Rejection, Schemas};
use crate::metrics::Metrics;
use crate::store::health::WritesDown;
use crate::store::{Commit, Store, StoreError};
use batch::{Batch, Built, Changes, Counts, Need, Prefetch, Ready, WriterState};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// At most this many events go into one atomic write.
pub const BATCH_EVENTS_MAX: usize = 4096;
/// Submissions waiting for the writer; senders wait when it is full (back-pressure).
pub const QUEUE_SUBMISSIONS_MAX: usize = 1024;
/// Batches written and waiting for the syncer; the committer waits beyond (bounded memory).
const SYNC_QUEUE_BATCHES: usize = 2;

/// Where a payload came from: decides how a rejection is kept and what `stream_seq` is.
#[derive(Clone, Debug)]
pub enum Source {
    /// The HTTP API on the embedded bus: rejections go back to the caller.
    Http,
    /// A message of the JetStream stream: rejections go to the rejection store.
    Nats {
        subject: String,
        stream_seq: u64,
        /// The stream's timestamp for the message: its events' `recorded_at` (CONTRACT §6.3).
        published: DateTime<Utc>,
    },
    /// `impact import`: the stored fields of the exported event are kept.
    Import {
        recorded_at: DateTime<Utc>,
        stream_seq: Option<u64>,
        submitted_by: Option<String>,
    },
    /// The service's own writes (reviews on the embedded bus).
    Service,
}

pub enum Payload {
    Raw(Bytes),
    Parsed(Box<Parsed>),
    /// Raw bytes already put through the stateless checks, off the writer's thread.
    Prepared(Bytes, Box<Result<Parsed, Rejection>>),
}

impl Incoming {
    /// Runs the stateless checks (JSON, schema) now, on the caller's thread, so the single
    /// writer is left with only what needs the log.
    pub fn prepare(self, schemas: &Schemas) -> Incoming {
        match self.payload {
            Payload::Raw(raw) => {
                let parsed = schemas.parse_bytes(&raw, self.origin);
                Incoming {
                    payload: Payload::Prepared(raw, Box::new(parsed)),
                    ..self
                }
            }
            _ => self,
        }
    }
}

pub struct Incoming {
    pub payload: Payload,
    pub origin: Origin,
    pub source: Source,
    pub submitted_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemOutcome {
    Applied { seq: u64 },
    Duplicate { seq: u64 },
    Rejected(Rejection),
}

/// `Err` lists the failing items of an all-or-nothing submission; nothing of it was written.
pub type SubmissionResult = Result<Vec<ItemOutcome>, WriteError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("rejected")]
    Rejected(Vec<(usize, Rejection)>),
    #[error("store: {0}")]
    Store(String),
    /// The store cannot take writes now (no space, a failed write): nothing was stored.
    #[error("{0}")]
    Unavailable(String),
    #[error("the writer has stopped")]
    Stopped,
}

pub struct Submission {
    pub items: Vec<Incoming>,
    /// All items are applied, or none (the HTTP contract: a body is validated whole).
    pub all_or_nothing: bool,
    /// For NATS: the stream sequence this submission brings the checkpoint to.
    pub checkpoint: Option<u64>,
    pub reply: Option<oneshot::Sender<SubmissionResult>>,
}

impl Submission {
    /// A submission whose answer comes back on the receiver.
    fn answered(
        items: Vec<Incoming>,
        all_or_nothing: bool,
    ) -> (Submission, oneshot::Receiver<SubmissionResult>) {
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            items,
            all_or_nothing,
            checkpoint: None,
            reply: Some(reply),
        };
        (submission, answer)
    }
}

/// How far the log has come: the waiters' clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub last_seq: u64,
    pub checkpoint: u64,
    /// The id of the last rejection stored.
    pub last_rejection: u64,
}

/// The handle the rest of the service holds.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Submission>,
    schemas: Arc<Schemas>,
    position: watch::Receiver<Position>,
    /// The last seq written to the store: readers see it, though it may not be durable yet.
    visible: Arc<AtomicU64>,
    /// For the health of the store: a submission is refused at once while it cannot write.
    store: Store,
}

impl Writer {
    /// Starts the writer thread over `store`. It ends when every handle is dropped.
    pub fn spawn(
        store: Store,
        schemas: Arc<Schemas>,
        metrics: Arc<Metrics>,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StoreError> {
        // What the store holds at start is where reads begin: make it durable first (after a
        // crash of the process, sled's file may hold writes the drive has not kept yet).
        store.sync()?;
        let state = load_state(&store)?;
        metrics.log_position.set(state.next_seq as i64 - 1);
        let (tx, rx) = mpsc::channel(QUEUE_SUBMISSIONS_MAX);
        let (position_tx, position) = watch::channel(state.position());
        let visible = Arc::new(AtomicU64::new(state.next_seq - 1));
        let (writer_schemas, written, writer_store) =
            (schemas.clone(), visible.clone(), store.clone());
        let thread = std::thread::Builder::new()
            .name("impact-writer".into())
            .spawn(move || {
                run(
                    rx,
                    writer_store,
                    writer_schemas,
                    metrics,
                    state,
                    position_tx,
                    written,
                )
            })
            .expect("spawn the writer thread");
        Ok((
            Writer {
                tx,
                schemas,
                position,
                visible,
                store,
            },
            thread,
        ))
    }

    pub async fn submit(&self, items: Vec<Incoming>, all_or_nothing: bool) -> SubmissionResult {
        self.check_writable()?;
        let (submission, answer) = Submission::answered(items, all_or_nothing);
        self.tx
            .send(submission)
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// The schemas the writer validates with, for callers that prepare payloads themselves.
    pub fn schemas(&self) -> &Arc<Schemas> {
        &self.schemas
    }

    /// Sends a submission without waiting for its answer (the stream consumer's path).
    pub async fn send(&self, submission: Submission) -> Result<(), WriteError> {
        self.tx
            .send(submission)
            .await
            .map_err(|_| WriteError::Stopped)
    }

    pub fn blocking_submit(&self, items: Vec<Incoming>, all_or_nothing: bool) -> SubmissionResult {
        self.blocking_send(items, all_or_nothing)?
            .blocking_recv()
            .map_err(|_| WriteError::Stopped)?
    }

    /// Queues a submission from a thread outside the runtime and returns where its answer will
    /// come, so the caller can prepare the next one meanwhile.
    pub fn blocking_send(
        &self,
        items: Vec<Incoming>,
        all_or_nothing: bool,
    ) -> Result<oneshot::Receiver<SubmissionResult>, WriteError> {
        self.check_writable()?;
        let items = items
            .into_iter()
            .map(|item| item.prepare(&self.schemas))
            .collect();
        let (submission, answer) = Submission::answered(items, all_or_nothing);
        self.tx
            .blocking_send(submission)
            .map_err(|_| WriteError::Stopped)?;
        Ok(answer)
    }

    /// The store the writer appends to, for reads that must agree with its writes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Why the store cannot take writes now, if it cannot (no space, a failed write).
    pub fn writes_down(&self) -> Option<WritesDown> {
        self.store.health().writes_down()
    }

    fn check_writable(&self) -> Result<(), WriteError> {
        match self.writes_down() {
            Some(down) => Err(WriteError::Unavailable(down.to_string())),
            None => Ok(()),
        }
    }

    /// How far the log is durable (what answers and `wait_for` go by).
    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    /// The last seq readers can see: written to the store, perhaps not yet synced.
    pub fn visible_seq(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Waits until the log reaches `seq` (or the stream checkpoint reaches `stream_seq`).
    pub async fn wait_for(
        &self,
        until: impl Fn(&Position) -> bool,
    ) -> Result<Position, WriteError> {
        let mut position = self.position.clone();
        let reached = position
            .wait_for(|p| until(p))
            .await
            .map_err(|_| WriteError::Stopped)?;
        Ok(*reached)
    }
}

/// Validates `items` against the log as it stands, all or nothing, without writing: what the
/// NATS path checks before it publishes. The writer checks again when it applies them.
pub fn dry_run(store: &Store, schemas: &Schemas, items: Vec<Incoming>) -> SubmissionResult {
    let items: Vec<Ready> = items.into_iter().map(|i| Ready::new(i, schemas)).collect();
    let store_error = |e: StoreError| WriteError::Store(e.to_string());
    let fetched = fetch(store, None, items.len(), &items).map_err(store_error)?;
    // The position is read after the records: every fact they hold is at or before it, so the
    // events checked here come after them, as they will when they are applied.
    let state = load_state(store).map_err(store_error)?;
    Batch::new(fetched, state, Utc::now()).submit(items, true)
}

/// Reads what a batch needs: from the batch being committed meanwhile (`earlier`, newer than
/// the store), else from the store. The only store reads of building a batch.
fn fetch<'a>(
    store: &Store,
    earlier: Option<&Changes>,
    events: usize,
    items: impl IntoIterator<Item = &'a Ready>,
) -> Result<Prefetch, StoreError> {
    let mut fetched = Prefetch::with_capacity(events);
    for parsed in items.into_iter().filter_map(Ready::parsed) {
        for need in batch::needs(parsed) {
            match need {
                Need::Action(action_id) => read_once(
                    &mut fetched.records,
                    action_id,
                    earlier.map(|e| &e.records),
                    || Ok(store.record(action_id)?.map(Arc::new)),
                )?,
                Need::Event(event_id) => {
                    read_once(&mut fetched.ids, event_id, earlier.map(|e| &e.ids), || {
                        store.event_index(event_id)
                    })?
                }
                Need::Review(review_id) => read_once(
                    &mut fetched.reviews,
                    &review_id,
                    earlier.map(|e| &e.reviews),
                    || store.review_seq(&review_id),
                )?,
            }
        }
    }
    Ok(fetched)
}

/// Reads `key` into `fetched` unless it is there: from the batch being committed, else `read`
/// (the store).
fn read_once<K, V>(
    fetched: &mut foldhash::HashMap<K, Option<V>>,
    key: &K,
    earlier: Option<&foldhash::HashMap<K, V>>,
    read: impl FnOnce() -> Result<Option<V>, StoreError>,
) -> Result<(), StoreError>
where
    K: std::hash::Hash + Eq + Clone,
    V: Clone,
{
    if !fetched.contains_key(key) {
        let value = match earlier.and_then(|earlier| earlier.get(key)) {
            Some(value) => Some(value.clone()),
            None => read()?,
        };
        fetched.insert(key.clone(), value);
    }
    Ok(())
}

fn load_state(store: &Store) -> Result<WriterState, StoreError> {
    let last_seq = store.last_seq()?;
    let last_recorded_at = match store.event_json(last_seq)? {
        Some(json) => {
            StoredEvent::from_json_bytes(&json)
                .map_err(StoreError::Corrupt)?
                .recorded_at
        }
        None => DateTime::<Utc>::UNIX_EPOCH,
    };
    Ok(WriterState {
        next_seq: last_seq + 1,
        next_rejection_id: store.last_rejection_id()? + 1,
        checkpoint: store.checkpoint()?,
        last_recorded_at,
    })
}

/// A batch handed to the committer: its atomic write, and whom to tell once it is durable.
struct Committing {
    commit: Commit,
    replies: Vec<(Option<oneshot::Sender<SubmissionResult>>, SubmissionResult)>,
    counts: Counts,
    position: Position,
    /// The batch's parsed events, freed by the syncer once answered: freeing their JSON trees
    /// is a fair share of the writer's time otherwise, and the committer is on the path too.
    spent: Vec<Parsed>,
}

/// The writer's loop. It validates and folds batch N+1 while the committer thread writes batch
/// N (what N changed is kept in memory meanwhile), and the syncer thread makes the batches
/// written so far durable with one sync, then answers them: the disk's latency, the sled work
/// and the validation overlap. At most one batch is being written at a time.
fn run(
    mut rx: mpsc::Receiver<Submission>,
    store: Store,
    schemas: Arc<Schemas>,
    metrics: Arc<Metrics>,
    mut state: WriterState,
    // The durable position (the syncer publishes it) and the written one (the committer's).
    position: watch::Sender<Position>,
    visible: Arc<AtomicU64>,
) {
    let (to_committer, committing) = std::sync::mpsc::sync_channel::<Committing>(0);
    let (done, committed) = std::sync::mpsc::channel::<Result<(), ()>>();
    let (to_syncer, applied) = std::sync::mpsc::sync_channel::<Committing>(SYNC_QUEUE_BATCHES);
    let committer = {
        let store = store.clone();
        std::thread::Builder::new()
            .name("impact-committer".into())
            .spawn(move || commit_loop(committing, done, to_syncer, &store, &visible))
            .expect("spawn the committer thread")
    };
    let syncer = {
        let store = store.clone();
        std::thread::Builder::new()
            .name("impact-syncer".into())
            .spawn(move || sync_loop(applied, &store, &metrics, &position))
            .expect("spawn the syncer thread")
    };
    let mut in_flight: Option<Changes> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut event_count = first.items.len();
        let mut submissions = vec![first];
        while event_count < BATCH_EVENTS_MAX {
            match rx.try_recv() {
                Ok(submission) => {
                    event_count += submission.items.len();
                    submissions.push(submission);
                }
                Err(_) => break,
            }
        }
        if store.health().writes_down().is_some() {
            submissions = hold_while_down(&store, submissions);
            if submissions.is_empty() {
                continue;
            }
        }
        let (replies, items): (Vec<_>, Vec<_>) = submissions
            .into_iter()
            .map(|submission| {
                let items: Vec<Ready> = submission
                    .items
                    .into_iter()
                    .map(|item| Ready::new(item, &schemas))
                    .collect();
                (
                    (submission.reply, submission.checkpoint),
                    (items, submission.all_or_nothing),
                )
            })
            .unzip();
        // A store read that fails leaves nothing built: crash-only, nothing of the batch is
        // written (and no checkpoint moves past the messages it holds).
        let fetched = match fetch(
            &store,
            in_flight.as_ref(),
            event_count,
            items.iter().flat_map(|(items, _)| items),
        ) {
            Ok(fetched) => fetched,
            Err(error) => {
                store.health().fail(&error.to_string());
                fail(replies.into_iter().map(|(reply, _)| reply), &store);
                continue;
            }
        };
        let mut batch = Batch::new(fetched, state.clone(), Utc::now());
        let replies: Vec<_> = replies
            .into_iter()
            .zip(items)
            .map(|((reply, checkpoint), (items, all_or_nothing))| {
                let result = batch.submit(items, all_or_nothing);
                if let Some(checkpoint) = checkpoint {
                    batch.advance_checkpoint(checkpoint);
                }
                (reply, result)
            })
            .collect();
        let Built {
            commit,
            state: next_state,
            counts,
            changes: written,
            spent,
        } = batch.finish();
        // The batch before must be written before this one, which was built on it, is.
        if in_flight.take().is_some() && committed.recv() != Ok(Ok(())) {
            fail(replies.into_iter().map(|(reply, _)| reply), &store);
            continue;
        }
        let handed = to_committer.send(Committing {
            commit,
            replies,
            counts,
            position: next_state.position(),
            spent,
        });
        if handed.is_err() {
            break;
        }
        state = next_state;
        in_flight = Some(written);
    }
    drop(to_committer);
    let _ = committer.join();
    let _ = syncer.join();
    if store.health().has_failed() {
        return; // Crash-only: a store that failed a write is not flushed again.
    }
    if let Err(error) = store.sync() {
        tracing::error!(%error, "final flush failed");
    }
}

/// Writes are down: answers at once what has someone waiting (`503`: nothing was stored,
/// retry) and returns what must not be dropped, the stream's messages, once writes are back.
/// Those have no one to answer, and the consumer has moved past them: while the disk is short
/// of space, the writer holds them (the consumer waits behind them); after a failed write the
/// process restarts and reads them again from the checkpoint, so they are let go.
fn hold_while_down(store: &Store, submissions: Vec<Submission>) -> Vec<Submission> {
    let (from_stream, answered): (Vec<_>, Vec<_>) = submissions
        .into_iter()
        .partition(|submission| submission.reply.is_none() && submission.checkpoint.is_some());
    if let Some(down) = store.health().writes_down() {
        for submission in answered {
            if let Some(reply) = submission.reply {
                let _ = reply.send(Err(WriteError::Unavailable(down.to_string())));
            }
        }
    }
    loop {
        match store.health().writes_down() {
            None => return from_stream,
            Some(WritesDown::Failed(_)) => return Vec::new(),
            Some(WritesDown::LowSpace { .. }) => std::thread::sleep(
                std::time::Duration::from_millis(crate::store::health::SPACE_CHECK_INTERVAL_MS),
            ),
        }
    }
}

/// The committer thread: writes each batch as one atomic write, tells the writer, and passes
/// it on to the syncer.
fn commit_loop(
    batches: std::sync::mpsc::Receiver<Committing>,
    done: std::sync::mpsc::Sender<Result<(), ()>>,
    to_syncer: std::sync::mpsc::SyncSender<Committing>,
    store: &Store,
    visible: &AtomicU64,
) {
    for batch in batches {
        // Crash-only: after a failed write nothing more is written to this store.
        let applied = match store.health().has_failed() {
            true => Err(()),
            false => store.apply(&batch.commit).map_err(|error| {
                store.health().fail(&error.to_string());
            }),
        };
        match applied {
            Ok(()) => {
                visible.store(batch.position.last_seq, Ordering::Release);
                let _ = done.send(Ok(()));
                if to_syncer.send(batch).is_err() {
                    break;
                }
            }
            Err(()) => {
                fail(batch.replies.into_iter().map(|(reply, _)| reply), store);
                let _ = done.send(Err(()));
            }
        }
    }
}

/// The syncer thread: one sync for every batch written since the last (group commit), then
/// their answers, in order. A failed sync fails the batches it covered and every one after it
/// (crash-only, `store::health`): their clients retry once the store is open again.
fn sync_loop(
    applied: std::sync::mpsc::Receiver<Committing>,
    store: &Store,
    metrics: &Metrics,
    position: &watch::Sender<Position>,
) {
    while let Ok(first) = applied.recv() {
        let mut group = vec![first];
        group.extend(applied.try_iter());
        // A failed sync is never followed by an acknowledgement: once one failed (or a write
        // did), every batch after it is answered `503`, synced or not.
        let synced = match store.health().has_failed() {
            true => false,
            false => store
                .sync()
                .map_err(|error| store.health().fail(&error.to_string()))
                .is_ok(),
        };
        if !synced {
            for batch in group {
                fail(batch.replies.into_iter().map(|(reply, _)| reply), store);
            }
            continue;
        }
        let newest = group.last().expect("a group holds a batch").position;
        // Positions only grow: the group's newest wakes every waiter it covers, once. Before
        // the answers, so a client that reads right after its `202` reads what it wrote.
        metrics.log_position.set(newest.last_seq as i64);
        position.send_replace(newest);
        for batch in group {
            batch.counts.record(metrics);
            for (reply, result) in batch.replies {
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            drop(batch.spent);
        }
    }
}

/// Answers a batch that was not written, or written and not made durable: `503`, nothing was
/// stored, retry. Only ever after the store's health says why (a failed write, or no space).
/// A batch that consumed stream messages has no one to answer; the restart that follows a
/// failed write resumes the stream from the stored checkpoint, so none of them is skipped.
fn fail(
    replies: impl IntoIterator<Item = Option<oneshot::Sender<SubmissionResult>>>,
    store: &Store,
) {
    let message = store.health().writes_down().map_or_else(
        || "the store could not write".to_owned(),
        |down| down.to_string(),
    );
    for reply in replies.into_iter().flatten() {
        {
            let _ = reply.send(Err(WriteError::Unavailable(message.clone())));
        }
    }
}
