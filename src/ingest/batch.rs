//! The pure core of the write side: one group commit built from submissions and what the log
//! holds for them, without I/O. The pipeline (`super`) reads what a batch needs first
//! ([`needs`] → [`Prefetch`]), then builds it here: validation against the records, the rules,
//! the facts and the changes to write. Nothing here can fail on the store, so a batch is
//! either built whole or, when the fetch failed, not at all.

use super::{Incoming, ItemOutcome, Payload, Position, Source, SubmissionResult, WriteError};
use crate::domain::event::{stored_json, EventKind};
use crate::domain::fold::{ActionRecord, FoldEvent};
use crate::domain::ids::{ActionId, EventId, REVIEW_ACTION};
use crate::domain::rights::Role;
use crate::domain::rules;
use crate::domain::validate::{Parsed, Rejection, RejectionCode, Schemas};
use crate::metrics::Metrics;
use crate::store::{Commit, NewEvent, RejectionRecord, RAW_KEPT_BYTES};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

/// What the writer carries from one batch to the next.
#[derive(Clone, Debug)]
pub struct WriterState {
    pub next_seq: u64,
    pub next_rejection_id: u64,
    pub checkpoint: u64,
    pub last_recorded_at: DateTime<Utc>,
}

impl WriterState {
    /// The position this state's writes reach.
    pub fn position(&self) -> Position {
        Position {
            last_seq: self.next_seq - 1,
            checkpoint: self.checkpoint,
            last_rejection: self.next_rejection_id - 1,
        }
    }
}

/// An item put through the stateless checks: its raw bytes (for the rejection store) and the
/// parsed event, or why it is not one.
pub struct Ready {
    raw: Option<Bytes>,
    parsed: Result<Parsed, Rejection>,
    source: Source,
    submitted_by: Option<String>,
}

impl Ready {
    /// Parses what is not parsed yet (JSON, schema) and checks a NATS subject against it.
    pub fn new(item: Incoming, schemas: &Schemas) -> Ready {
        let Incoming {
            payload,
            origin,
            source,
            submitted_by,
        } = item;
        let (raw, parsed) = match payload {
            Payload::Raw(raw) => {
                let parsed = schemas.parse_bytes(&raw, origin);
                (Some(raw), parsed)
            }
            Payload::Parsed(parsed) => (None, Ok(*parsed)),
            Payload::Prepared(raw, parsed) => (Some(raw), *parsed),
        };
        let parsed = parsed.and_then(|parsed| {
            check_subject(&source, &parsed)?;
            Ok(parsed)
        });
        Ready {
            raw,
            parsed,
            source,
            submitted_by,
        }
    }
}

impl Ready {
    /// The event, if the stateless checks passed it.
    pub fn parsed(&self) -> Option<&Parsed> {
        self.parsed.as_ref().ok()
    }
}

/// What a batch reads of the log, by the Action records, event ids and review ids its events
/// name.
pub enum Need<'a> {
    Action(&'a ActionId),
    Event(&'a EventId),
    Review(String),
}

/// The keys of the log an event needs read before it is built into a batch.
pub fn needs(parsed: &Parsed) -> impl Iterator<Item = Need<'_>> {
    let event = std::iter::once(Need::Event(&parsed.envelope.event_id));
    let other = match review_id(parsed) {
        Some(review_id) => Some(Need::Review(review_id)),
        None if parsed.kind.is_review() => None,
        None => Some(Need::Action(&parsed.envelope.action_id)),
    };
    event.chain(other)
}

/// What the log held for a batch's needs when it was fetched (absent keys as `None`).
#[derive(Default)]
pub struct Prefetch {
    pub records: HashMap<ActionId, Option<Arc<ActionRecord>>>,
    pub ids: HashMap<EventId, Option<(u64, [u8; 32])>>,
    pub reviews: HashMap<String, Option<u64>>,
}

impl Prefetch {
    pub fn with_capacity(events: usize) -> Prefetch {
        Prefetch {
            records: HashMap::with_capacity(events),
            ids: HashMap::with_capacity(events),
            reviews: HashMap::new(),
        }
    }
}

const FETCHED: &str = "a batch reads only what was fetched for it";

/// What a batch changed, newer than the store until it is committed: the records it loaded
/// and folded into, the event ids and review ids it appended. The next batch's fetch reads it
/// before the store while the committer writes it.
#[derive(Default)]
pub struct Changes {
    pub records: HashMap<ActionId, Arc<ActionRecord>>,
    pub ids: HashMap<EventId, (u64, [u8; 32])>,
    pub reviews: HashMap<String, u64>,
}

#[derive(Default)]
pub struct Counts {
    applied: u64,
    duplicate: u64,
    rejected: HashMap<RejectionCode, u64>,
}

impl Counts {
    pub fn record(&self, metrics: &Metrics) {
        metrics.applied.inc_by(self.applied);
        metrics.duplicate.inc_by(self.duplicate);
        for (code, count) in &self.rejected {
            metrics.rejected(*code, *count);
        }
    }
}

/// What an all-or-nothing submission changed, to put back if one of its items fails.
struct Undo {
    state: WriterState,
    events: usize,
    records: HashMap<ActionId, Option<Arc<ActionRecord>>>,
    new_ids: Vec<EventId>,
    new_reviews: Vec<String>,
    counts_applied: u64,
    counts_duplicate: u64,
}

/// A built batch: its atomic write, the state after it, and what it changed.
pub struct Built {
    pub commit: Commit,
    pub state: WriterState,
    pub counts: Counts,
    pub changes: Changes,
    /// The batch's parsed events, to be freed off the writer's thread.
    pub spent: Vec<Parsed>,
}

/// One group commit under construction.
pub struct Batch {
    fetched: Prefetch,
    state: WriterState,
    now: DateTime<Utc>,
    changes: Changes,
    commit: Commit,
    counts: Counts,
    spent: Vec<Parsed>,
    undo: Option<Undo>,
}

impl Batch {
    /// A batch after `state`, at the wall-clock time `now`, over what was fetched for it.
    pub fn new(fetched: Prefetch, state: WriterState, now: DateTime<Utc>) -> Batch {
        Batch {
            fetched,
            // recorded_at never goes backwards, whatever the wall clock does.
            now: now.max(state.last_recorded_at),
            state,
            changes: Changes::default(),
            commit: Commit::default(),
            counts: Counts::default(),
            spent: Vec::new(),
            undo: None,
        }
    }

    /// Brings the stream checkpoint to `checkpoint` (it never moves back).
    pub fn advance_checkpoint(&mut self, checkpoint: u64) {
        self.state.checkpoint = self.state.checkpoint.max(checkpoint);
    }

    pub fn submit(&mut self, items: Vec<Ready>, all_or_nothing: bool) -> SubmissionResult {
        if all_or_nothing {
            self.undo = Some(Undo {
                state: self.state.clone(),
                events: self.commit.events.len(),
                records: HashMap::new(),
                new_ids: Vec::new(),
                new_reviews: Vec::new(),
                counts_applied: self.counts.applied,
                counts_duplicate: self.counts.duplicate,
            });
        }
        let mut outcomes = Vec::with_capacity(items.len());
        let mut failures = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let outcome = self.apply(item, !all_or_nothing);
            if let ItemOutcome::Rejected(rejection) = &outcome {
                // An all-or-nothing submission's rejections are counted where they are reported.
                if !all_or_nothing {
                    *self.counts.rejected.entry(rejection.code).or_default() += 1;
                }
                failures.push((index, rejection.clone()));
            }
            outcomes.push(outcome);
        }
        let undo = self.undo.take();
        if let (Some(undo), false) = (undo, failures.is_empty()) {
            self.roll_back(undo);
            return Err(WriteError::Rejected(failures));
        }
        Ok(outcomes)
    }

    fn roll_back(&mut self, undo: Undo) {
        self.state = undo.state;
        self.commit.events.truncate(undo.events);
        for (action_id, record) in undo.records {
            match record {
                Some(record) => self.changes.records.insert(action_id, record),
                None => self.changes.records.remove(&action_id),
            };
        }
        for id in undo.new_ids {
            self.changes.ids.remove(&id);
        }
        for id in undo.new_reviews {
            self.changes.reviews.remove(&id);
        }
        self.counts.applied = undo.counts_applied;
        self.counts.duplicate = undo.counts_duplicate;
    }

    /// `action_id`'s record as the batch has it so far.
    fn record(&self, action_id: &ActionId) -> Option<&Arc<ActionRecord>> {
        match self.changes.records.get(action_id) {
            Some(record) => Some(record),
            None => self.fetched.records.get(action_id).expect(FETCHED).as_ref(),
        }
    }

    fn seen(&self, event_id: &EventId) -> Option<(u64, [u8; 32])> {
        match self.changes.ids.get(event_id) {
            Some(found) => Some(*found),
            None => *self.fetched.ids.get(event_id).expect(FETCHED),
        }
    }

    fn review_seq(&self, review_id: &str) -> Option<u64> {
        match self.changes.reviews.get(review_id) {
            Some(seq) => Some(*seq),
            None => *self.fetched.reviews.get(review_id).expect(FETCHED),
        }
    }

    /// Validates one item and, if it passes, appends it to the batch.
    fn apply(&mut self, item: Ready, keep_rejections: bool) -> ItemOutcome {
        let Ready {
            raw,
            parsed,
            source,
            submitted_by,
        } = item;
        let outcome = match parsed {
            Ok(parsed) => self.append(parsed, &source, submitted_by),
            Err(rejection) => ItemOutcome::Rejected(rejection),
        };
        if let (
            ItemOutcome::Rejected(rejection),
            true,
            Source::Nats {
                subject,
                stream_seq,
                published,
            },
        ) = (&outcome, keep_rejections, &source)
        {
            let raw = raw.unwrap_or_default();
            // At most RAW_KEPT_BYTES of it: text when it is UTF-8 as far as it is kept (a
            // character the cut splits is left out), else the kept bytes in base64.
            let truncated = raw.len() > RAW_KEPT_BYTES;
            let head = &raw[..raw.len().min(RAW_KEPT_BYTES)];
            let kept = match std::str::from_utf8(head) {
                Ok(text) => Ok(text),
                Err(cut) if truncated && cut.error_len().is_none() => {
                    Ok(std::str::from_utf8(&head[..cut.valid_up_to()]).expect("valid up to"))
                }
                Err(_) => Err(head),
            };
            let (raw_text, raw_encoding) = match kept {
                Ok(text) => (text.to_owned(), None),
                Err(bytes) => (
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                    Some("base64".to_owned()),
                ),
            };
            let id = self.state.next_rejection_id;
            self.state.next_rejection_id += 1;
            self.commit.rejections.push(RejectionRecord {
                id,
                received_at: crate::domain::event::format_timestamp(published),
                source: "nats".into(),
                subject: Some(subject.clone()),
                stream_seq: Some(*stream_seq),
                event_id: event_id_of(&raw),
                code: rejection.code.as_str().into(),
                message: rejection.message.clone(),
                raw: raw_text,
                raw_encoding,
                raw_bytes: truncated.then_some(raw.len() as u64),
                raw_truncated: truncated,
            });
        }
        outcome
    }

    fn append(
        &mut self,
        parsed: Parsed,
        source: &Source,
        submitted_by: Option<String>,
    ) -> ItemOutcome {
        let event_id = parsed.envelope.event_id;
        if let Some((seq, hash)) = self.seen(&event_id) {
            if hash == parsed.hash {
                self.counts.duplicate += 1;
                return ItemOutcome::Duplicate { seq };
            }
            return ItemOutcome::Rejected(Rejection::at(
                RejectionCode::EventIdConflict,
                "/event_id",
                // Not its seq, nor whose it is: the stored event may be another country's.
                format!("event {event_id} is stored already with different content"),
            ));
        }
        let action_id = parsed.envelope.action_id.clone();
        let is_review = parsed.kind.is_review();
        let review_id = review_id(&parsed);
        if let Some(review_id) = &review_id {
            // One review per id, whoever writes it (replicas, restarts): a second is a duplicate.
            if let Some(seq) = self.review_seq(review_id) {
                self.counts.duplicate += 1;
                return ItemOutcome::Duplicate { seq };
            }
        }
        let record = match is_review {
            true => None,
            false => self.record(&action_id).map(|record| &**record),
        };
        let fact = if is_review {
            None
        } else {
            match rules::check(record, &parsed, self.now.date_naive()) {
                Ok(fact) => Some(fact),
                Err(rejection) => return ItemOutcome::Rejected(rejection),
            }
        };
        if let Err(rejection) = check_publisher(source, &parsed, record, &self.now) {
            return ItemOutcome::Rejected(rejection);
        }

        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        let (recorded_at, stream_seq, submitted_by) = match source {
            Source::Import {
                recorded_at,
                stream_seq,
                submitted_by,
            } => (*recorded_at, *stream_seq, submitted_by.clone()),
            // Never before the last: replicas apply the same messages in the same order, so
            // this is the same on each of them.
            Source::Nats {
                stream_seq,
                published,
                ..
            } => (
                (*published).max(self.state.last_recorded_at),
                Some(*stream_seq),
                submitted_by,
            ),
            Source::Http | Source::Service => (self.now, None, submitted_by),
        };
        self.state.last_recorded_at = self.state.last_recorded_at.max(recorded_at);
        let json = stored_json(
            &parsed.canonical,
            seq,
            &recorded_at,
            stream_seq,
            submitted_by.as_deref(),
        );
        if let Some(fact) = fact {
            let event = FoldEvent {
                seq,
                event_id,
                occurred_on: parsed.envelope.occurred_on,
                recorded_at_us: recorded_at.timestamp_micros(),
                evidence_count: parsed
                    .envelope
                    .evidence
                    .as_ref()
                    .map_or(0, |evidence| evidence.len() as u16),
                fact,
            };
            if let Some(record) = self.changes.records.get_mut(&action_id) {
                if let Some(undo) = &mut self.undo {
                    if !undo.records.contains_key(&action_id) {
                        undo.records.insert(action_id.clone(), Some(record.clone()));
                    }
                }
                // Copied only while an undo (or the batch being committed) still holds it.
                Arc::make_mut(record).push(event);
            } else {
                // Taken out of the fetch, so the push copies the record only while the batch
                // being committed (it was fetched from there) or an undo still holds it.
                let before = self
                    .fetched
                    .records
                    .get_mut(&action_id)
                    .expect(FETCHED)
                    .take();
                if let Some(undo) = &mut self.undo {
                    undo.records
                        .entry(action_id.clone())
                        .or_insert_with(|| before.clone());
                }
                let mut record = before.unwrap_or_else(|| {
                    Arc::new(ActionRecord::new(
                        action_id.clone(),
                        parsed.envelope.country.clone(),
                    ))
                });
                Arc::make_mut(&mut record).push(event);
                self.changes.records.insert(action_id.clone(), record);
            }
        }
        if let Some(undo) = &mut self.undo {
            undo.new_ids.push(event_id);
            undo.new_reviews.extend(review_id.clone());
        }
        if let Some(review_id) = &review_id {
            self.changes.reviews.insert(review_id.clone(), seq);
        }
        self.changes.ids.insert(event_id, (seq, parsed.hash));
        self.commit.events.push(NewEvent {
            seq,
            json,
            event_id,
            hash: parsed.hash,
            action_id: (!is_review).then_some(action_id),
            review_id,
        });
        self.spent.push(parsed);
        self.counts.applied += 1;
        ItemOutcome::Applied { seq }
    }

    pub fn finish(mut self) -> Built {
        let mut touched: Vec<&ActionId> = self
            .commit
            .events
            .iter()
            .filter_map(|event| event.action_id.as_ref())
            .collect();
        touched.sort();
        touched.dedup();
        self.commit.records = touched
            .into_iter()
            .filter_map(|id| self.changes.records.get(id).cloned())
            .collect();
        if self.state.checkpoint > 0 {
            self.commit.checkpoint = Some(self.state.checkpoint);
        }
        Built {
            commit: self.commit,
            state: self.state,
            counts: self.counts,
            changes: self.changes,
            spent: self.spent,
        }
    }
}

/// A `review.completed`'s `review_id`.
fn review_id(parsed: &Parsed) -> Option<String> {
    (parsed.kind == EventKind::ReviewCompleted)
        .then(|| {
            parsed
                .envelope
                .data
                .get("review_id")?
                .as_str()
                .map(str::to_owned)
        })
        .flatten()
}

/// What a NATS subject says of who published the message (CONTRACT.md §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Publisher {
    /// `impact.events.<country>.<action_id>`: a field office, straight to NATS.
    FieldOffice,
    /// `impact.submitted.<country>.<action_id>`: the service, for an authenticated HTTP caller.
    Submitted,
    /// `impact.reviews.<review_id>`: the service's reviews.
    Reviews,
}

impl Publisher {
    fn of(source: &Source) -> Option<Publisher> {
        let Source::Nats { subject, .. } = source else {
            return None;
        };
        Some(match subject.split('.').nth(1) {
            Some("events") => Publisher::FieldOffice,
            Some("submitted") => Publisher::Submitted,
            _ => Publisher::Reviews,
        })
    }
}

/// On NATS, the subject names the Action, `impact.events.<country>.<action_id>` or
/// `impact.submitted.<country>.<action_id>`, or a review: `impact.reviews.<review_id>`. A field
/// office's subject carries only the types a field office may submit.
fn check_subject(source: &Source, parsed: &Parsed) -> Result<(), Rejection> {
    let Source::Nats { subject, .. } = source else {
        return Ok(());
    };
    let envelope = &parsed.envelope;
    let tokens: Vec<&str> = subject.split('.').collect();
    let matches = match tokens.as_slice() {
        ["impact", "events" | "submitted", country, action] => {
            *country == envelope.country.as_str()
                && *action == envelope.action_id.as_str()
                && !parsed.kind.is_review()
        }
        ["impact", "reviews", review] => {
            parsed.kind.is_review()
                && envelope.action_id.as_str() == REVIEW_ACTION
                && envelope.data.get("review_id").and_then(|id| id.as_str()) == Some(*review)
        }
        _ => false,
    };
    if !matches {
        return Err(Rejection::new(
            RejectionCode::SubjectMismatch,
            format!(
                "subject {subject} does not match the payload (country {}, action_id {}, type {})",
                envelope.country, envelope.action_id, envelope.event_type
            ),
        ));
    }
    if Publisher::of(source) == Some(Publisher::FieldOffice)
        && !Role::FieldOffice.may_submit(&envelope.event_type)
    {
        return Err(Rejection::at(
            RejectionCode::ForbiddenType,
            "/type",
            format!(
                "{} events are not taken from a field office's subject {subject}",
                envelope.event_type
            ),
        ));
    }
    Ok(())
}

/// The rules that need the record or the clock, for what came straight from NATS: a field
/// office may retract only what it may submit; a review is never for a slot still to come.
fn check_publisher(
    source: &Source,
    parsed: &Parsed,
    record: Option<&ActionRecord>,
    now: &DateTime<Utc>,
) -> Result<(), Rejection> {
    match (Publisher::of(source), &parsed.kind) {
        (Some(Publisher::FieldOffice), EventKind::Retracted { target }) => {
            let target_type = record
                .and_then(|record| record.find(target))
                .map(|event| event.fact.event_type());
            match target_type {
                Some(target_type) if !Role::FieldOffice.may_retract(&target_type) => {
                    Err(Rejection::at(
                        RejectionCode::ForbiddenType,
                        "/data/target_event_id",
                        format!("a field office may not retract a {target_type} event"),
                    ))
                }
                _ => Ok(()),
            }
        }
        (Some(Publisher::Reviews), EventKind::ReviewCompleted) => {
            let slot = parsed.envelope.data.get("schedule_slot");
            let slot = slot.and_then(serde_json::Value::as_str);
            let later = slot.and_then(|slot| slot.parse::<DateTime<Utc>>().ok());
            match (slot, later) {
                (None, _) => Ok(()),
                (Some(_), Some(at)) if at <= *now => Ok(()),
                (Some(slot), _) => Err(Rejection::at(
                    RejectionCode::SchemaViolation,
                    "/data/schedule_slot",
                    format!("schedule slot {slot} is not a time that has come"),
                )),
            }
        }
        _ => Ok(()),
    }
}

/// The `event_id` of a raw payload, when it has one, for the rejection store.
fn event_id_of(raw: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(raw).ok()?;
    value
        .get("event_id")?
        .as_str()
        .map(|id| id.chars().take(64).collect())
}
