//! Reads shared by the HTTP API and the offline CLI: views under filters, histories, the
//! review computation. Knows the store and the domain, nothing of HTTP.
//!
//! Every read takes `durable`, the newest seq it may show (CONTRACT.md §11: a seq once shown is
//! never reused): the service passes its writer's durable position, which trails what is
//! written to the store by the sync in progress; the offline commands pass the store's last.

use crate::domain::compare::{Comparison, Side};
use crate::domain::event::StoredEvent;
use crate::domain::fold::{ActionRecord, ActionStatus, Filters, ViewRules};
use crate::domain::ids::{ActionId, Country};
use crate::domain::review::{build_report, ReviewPart, ReviewReport, ReviewScope};
use crate::store::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The reference date of a read: its `as_of`, else today.
pub fn reference_date(filters: &Filters) -> NaiveDate {
    filters.as_of.unwrap_or_else(today)
}

pub fn status(
    store: &Store,
    durable: u64,
    action_id: &ActionId,
    filters: &Filters,
    rules: &ViewRules,
) -> Result<Option<ActionStatus>, StoreError> {
    let Some(record) = store.record(action_id)? else {
        return Ok(None);
    };
    Ok(status_of(&record, durable, filters, rules))
}

/// The status of an Action whose record is at hand.
pub fn status_of(
    record: &ActionRecord,
    durable: u64,
    filters: &Filters,
    rules: &ViewRules,
) -> Option<ActionStatus> {
    record
        .view(&filters.within(record, durable), rules)
        .map(|view| ActionStatus::new(view, rules, reference_date(filters)))
}

/// Every Action's status under `filters`, in `action_id` order; `keep` picks countries early.
pub fn statuses(
    store: &Store,
    durable: u64,
    filters: &Filters,
    rules: &ViewRules,
    keep: impl Fn(&Country) -> bool,
) -> Result<Vec<ActionStatus>, StoreError> {
    each_status(store, durable, filters, rules, keep).collect()
}

/// `statuses` one at a time, so a caller that only counts them holds none.
pub fn each_status<'a>(
    store: &'a Store,
    durable: u64,
    filters: &'a Filters,
    rules: &'a ViewRules,
    keep: impl Fn(&Country) -> bool + 'a,
) -> impl Iterator<Item = Result<ActionStatus, StoreError>> + 'a {
    let reference = reference_date(filters);
    store.records().filter_map(move |record| match record {
        Err(error) => Some(Err(error)),
        Ok(record) if !keep(&record.country) => None,
        Ok(record) => record
            .view(&filters.within(&record, durable), rules)
            .map(|view| Ok(ActionStatus::new(view, rules, reference))),
    })
}

/// An Action's stored events in `seq` order, each marked `retracted` as known under the filters.
/// `None` when the Action has no event at all.
pub fn history(
    store: &Store,
    durable: u64,
    action_id: &ActionId,
    filters: &Filters,
) -> Result<Option<Vec<Value>>, StoreError> {
    let Some(record) = store.record(action_id)? else {
        return Ok(None);
    };
    history_of(store, durable, &record, filters).map(Some)
}

/// The history of an Action whose record is at hand.
pub fn history_of(
    store: &Store,
    durable: u64,
    record: &ActionRecord,
    filters: &Filters,
) -> Result<Vec<Value>, StoreError> {
    let filters = &filters.within(record, durable);
    let retracted = record.retracted(filters);
    let mut events = Vec::new();
    for fact in &record.events {
        if !filters.passes(fact.seq, fact.recorded_at_us, fact.occurred_on) {
            continue;
        }
        let json = logged_event(store, fact.seq)?;
        let mut value: Value =
            serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        value["retracted"] = Value::Bool(retracted.contains(&fact.event_id));
        events.push(value);
    }
    Ok(events)
}

/// The JSON of the event an Action's record names by `seq`: the log must hold it.
pub fn logged_event(store: &Store, seq: u64) -> Result<sled::IVec, StoreError> {
    store
        .event_json(seq)?
        .ok_or_else(|| StoreError::Corrupt(format!("seq {seq} is indexed but not in the log")))
}

/// A stored event of `action_id`, found by its id: its seq and its JSON as stored. `None` when
/// no event has the id, or it is another Action's (which may be another country's).
pub fn event_of(
    store: &Store,
    action_id: &ActionId,
    event_id: &crate::domain::ids::EventId,
) -> Result<Option<(u64, Value)>, StoreError> {
    let Some((seq, _)) = store.event_index(event_id)? else {
        return Ok(None);
    };
    let Some(json) = store.event_json(seq)? else {
        return Ok(None);
    };
    let event: Value = serde_json::from_slice(&json)
        .map_err(|e| StoreError::Corrupt(format!("stored event {seq}: {e}")))?;
    Ok((event["action_id"].as_str() == Some(action_id.as_str())).then_some((seq, event)))
}

/// Computes a review over every view at `as_of` and the current log position.
pub fn compute_review(
    store: &Store,
    durable: u64,
    rules: &ViewRules,
    review_id: String,
    as_of: NaiveDate,
    country: Option<Country>,
    schedule_slot: Option<String>,
) -> Result<ReviewReport, StoreError> {
    let until_seq = durable;
    let filters = Filters {
        as_of: Some(as_of),
        until_seq: Some(until_seq),
        known_at: None,
    };
    let mut failure = None;
    // Action by Action, straight into the report: no view is kept once it is counted.
    let statuses = each_status(store, durable, &filters, rules, |c| {
        country.as_ref().is_none_or(|scope| scope == c)
    })
    .filter_map(|status| status.map_err(|error| failure.get_or_insert(error)).ok());
    let scope = ReviewScope {
        as_of,
        until_seq,
        country: country.clone(),
    };
    let report = build_report(review_id, &scope, schedule_slot, statuses);
    match failure {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

/// Every stored review, newest first, with its seq and `recorded_at` for time travel. A report
/// written in parts is listed by its head: totals without findings and highlights.
pub fn reviews(
    store: &Store,
    durable: u64,
) -> Result<Vec<(u64, DateTime<Utc>, ReviewReport)>, StoreError> {
    let mut seqs = store.review_seqs()?;
    seqs.retain(|&seq| seq <= durable);
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs.into_iter()
        .map(|seq| {
            let (recorded_at, mut head) = review_event(store, seq)?;
            head.parts.clear();
            Ok((seq, recorded_at, head))
        })
        .collect()
}

/// The reviews as known under `filters`, newest first: transaction time by the review's own
/// place in the log, valid time by the date it was read as of. Heads only, as [`reviews`].
pub fn reviews_known(
    store: &Store,
    durable: u64,
    filters: &Filters,
) -> Result<Vec<ReviewReport>, StoreError> {
    Ok(reviews(store, durable)?
        .into_iter()
        .filter(|(seq, recorded_at, report)| {
            filters.known(*seq, recorded_at.timestamp_micros())
                && filters.as_of.is_none_or(|as_of| report.as_of <= as_of)
        })
        .map(|(_, _, report)| report)
        .collect())
}

/// A stored review, whole (its parts joined).
pub fn review(
    store: &Store,
    durable: u64,
    review_id: &str,
) -> Result<Option<ReviewReport>, StoreError> {
    match store.review_seq(review_id)?.filter(|&seq| seq <= durable) {
        Some(seq) => review_at(store, seq).map(Some),
        None => Ok(None),
    }
}

/// The review stored at `seq`, whole.
fn review_at(store: &Store, seq: u64) -> Result<ReviewReport, StoreError> {
    let (_, head) = review_event(store, seq)?;
    // The parts were appended before their head: all are durable when it is.
    let parts = head
        .parts
        .iter()
        .map(|event_id| {
            let (part_seq, _) = store.event_index(event_id)?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "review {}: part {event_id} missing",
                    head.review_id
                ))
            })?;
            let data = stored_data(store, part_seq)?.1;
            serde_json::from_value::<ReviewPart>(data)
                .map_err(|e| StoreError::Corrupt(format!("review part at seq {part_seq}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(head.joined(parts))
}

/// The newest review before log position `before` whose head `matches`, reading heads newest
/// first and stopping at the first that does: its seq and head.
pub fn newest_review(
    store: &Store,
    before: u64,
    matches: impl Fn(&ReviewReport) -> bool,
) -> Result<Option<(u64, ReviewReport)>, StoreError> {
    let mut seqs = store.review_seqs()?;
    seqs.retain(|&seq| seq < before);
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    for seq in seqs {
        let (_, head) = review_event(store, seq)?;
        if matches(&head) {
            return Ok(Some((seq, head)));
        }
    }
    Ok(None)
}

/// A stored review, named as a time-travel choice names it.
#[derive(Clone, Debug)]
pub struct ReviewMark {
    pub seq: u64,
    pub review_id: String,
    pub as_of: NaiveDate,
    pub country: Option<Country>,
    pub until_seq: u64,
}

/// The newest `count` stored reviews, newest first.
pub fn review_marks(store: &Store, count: usize) -> Result<Vec<ReviewMark>, StoreError> {
    let mut seqs = store.review_seqs()?;
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs.into_iter()
        .take(count)
        .map(|seq| {
            let (_, head) = review_event(store, seq)?;
            Ok(ReviewMark {
                seq,
                review_id: head.review_id,
                as_of: head.as_of,
                country: head.country,
                until_seq: head.until_seq,
            })
        })
        .collect()
}

/// A stored review and the previous review of the same country scope (by seq), both whole:
/// what `GET /v1/reviews/{id}/changes` compares. `None` when there is no such review.
pub fn review_and_previous(
    store: &Store,
    durable: u64,
    review_id: &str,
) -> Result<Option<(ReviewReport, Option<ReviewReport>)>, StoreError> {
    let Some(seq) = store.review_seq(review_id)?.filter(|&seq| seq <= durable) else {
        return Ok(None);
    };
    let now = review_at(store, seq)?;
    let previous = newest_review(store, seq, |head| head.country == now.country)?
        .map(|(previous_seq, _)| review_at(store, previous_seq))
        .transpose()?;
    Ok(Some((now, previous)))
}

/// One Action compared under two sets of filters, with what a page needs to name it.
pub struct Compared {
    pub country: Country,
    /// The Action's title on the later side that has one.
    pub title: Option<String>,
    /// Each outcome's title, from either side.
    pub outcome_titles: std::collections::BTreeMap<String, String>,
    pub comparison: Comparison,
}

/// One Action under two sets of filters (CONTRACT.md §4.5), from one read of its record.
pub fn compare(
    store: &Store,
    durable: u64,
    action_id: &ActionId,
    (a, b): (&Filters, &Filters),
    rules: &ViewRules,
) -> Result<Option<Compared>, StoreError> {
    let Some(record) = store.record(action_id)? else {
        return Ok(None);
    };
    let side = |filters: &Filters| {
        let status = status_of(&record, durable, filters, rules);
        (Side::new(filters, reference_date(filters)), status)
    };
    let ((side_a, status_a), (side_b, status_b)) = (side(a), side(b));
    let Some(comparison) = crate::domain::compare::compare(
        action_id,
        (side_a, status_a.as_ref()),
        (side_b, status_b.as_ref()),
    ) else {
        return Ok(None);
    };
    let sides = [&status_a, &status_b];
    let title = sides
        .iter()
        .rev()
        .find_map(|status| status.as_ref()?.view.title.clone());
    let outcome_titles = sides
        .iter()
        .filter_map(|status| status.as_ref())
        .flat_map(|status| &status.view.outcomes)
        .map(|outcome| (outcome.outcome_id.to_string(), outcome.title.clone()))
        .collect();
    Ok(Some(Compared {
        country: record.country.clone(),
        title,
        outcome_titles,
        comparison,
    }))
}

fn review_event(store: &Store, seq: u64) -> Result<(DateTime<Utc>, ReviewReport), StoreError> {
    let (recorded_at, data) = stored_data(store, seq)?;
    let report = serde_json::from_value(data)
        .map_err(|e| StoreError::Corrupt(format!("review at seq {seq}: {e}")))?;
    Ok((recorded_at, report))
}

fn stored_data(store: &Store, seq: u64) -> Result<(DateTime<Utc>, Value), StoreError> {
    let json = store
        .event_json(seq)?
        .ok_or_else(|| StoreError::Corrupt(format!("review event at seq {seq} missing")))?;
    let event = StoredEvent::from_json_bytes(&json).map_err(StoreError::Corrupt)?;
    Ok((event.recorded_at, Value::Object(event.envelope.data)))
}
