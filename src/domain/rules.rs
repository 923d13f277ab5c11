//! Stateful rules (CONTRACT.md §2.4–2.5): whether an event that passed the schema fits the
//! Action as the log knows it, and the fact it contributes if so. Pure: the record and today's
//! date are passed in.

use super::event::{EventKind, ExpectedInput, KindError};
use super::fold::{ActionRecord, ExpectedStage, Fact, Filters, FoldEvent};
use super::ids::{ActionId, Country, EventId, OutcomeId};
use super::tracks::Track;
use super::validate::{Parsed, Rejection, RejectionCode};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

/// `occurred_on` may be at most this many days after the server's date (time zones).
pub const FUTURE_DAYS_MAX: i64 = 1;

/// Checks `parsed` against its Action's record (`None`: the Action has no event yet) and returns
/// the fact it adds. Reviews are not Action events and are not checked here.
pub fn check(
    record: Option<&ActionRecord>,
    parsed: &Parsed,
    today: NaiveDate,
) -> Result<Fact, Rejection> {
    let envelope = &parsed.envelope;
    if (envelope.occurred_on - today).num_days() > FUTURE_DAYS_MAX {
        return Err(Rejection::at(
            RejectionCode::OccurredInFuture,
            "/occurred_on",
            format!(
                "occurred_on {} is after {today} (the server's date) by more than a day",
                envelope.occurred_on
            ),
        ));
    }
    if let Some(record) = record {
        if record.country != envelope.country {
            return Err(Rejection::at(
                RejectionCode::CountryMismatch,
                "/country",
                format!(
                    // Not the Action's country: the caller may not be allowed to read it.
                    "Action {} is registered in another country than {}",
                    record.action_id, envelope.country
                ),
            ));
        }
    }
    let retracted = record
        .map(|record| record.retracted(&Filters::default()))
        .unwrap_or_default();
    let track_of =
        |outcome: &OutcomeId| record.and_then(|record| record.outcome_track(outcome, &retracted));
    let known_track = |outcome: &OutcomeId| {
        track_of(outcome).ok_or_else(|| {
            Rejection::at(
                RejectionCode::OutcomeUnknown,
                "/outcome_id",
                format!("outcome {outcome} has no track event yet"),
            )
        })
    };
    match &parsed.kind {
        EventKind::Track { outcome, stage, .. } => {
            if let Some(track) = track_of(outcome) {
                if track != stage.track {
                    return Err(Rejection::at(
                        RejectionCode::TrackMismatch,
                        "/type",
                        format!(
                            "outcome {outcome} is on the {track} track, not {}",
                            stage.track
                        ),
                    ));
                }
            }
        }
        EventKind::Verified { outcome } | EventKind::Disputed { outcome } => {
            known_track(outcome)?;
        }
        EventKind::Retracted { target } => {
            let found = record.and_then(|record| record.find(target));
            match found {
                Some(event) if !matches!(event.fact, Fact::Retracted { .. }) => {}
                Some(_) => {
                    return Err(Rejection::at(
                        RejectionCode::RetractionTargetUnknown,
                        "/data/target_event_id",
                        format!("event {target} is itself a retraction"),
                    ))
                }
                None => {
                    return Err(Rejection::at(
                        RejectionCode::RetractionTargetUnknown,
                        "/data/target_event_id",
                        format!(
                            "event {target} is not a stored event of Action {}",
                            envelope.action_id
                        ),
                    ))
                }
            }
        }
        _ => {}
    }
    match fact(&parsed.kind, |outcome| track_of(outcome)) {
        Ok(Some(fact)) => Ok(fact),
        Ok(None) => unreachable!("reviews are appended without an Action record"),
        Err(Unresolved::NoTrack(outcome)) => Err(Rejection::at(
            RejectionCode::OutcomeUnknown,
            "/outcome_id",
            format!("outcome {outcome} has no track event yet"),
        )),
        Err(Unresolved::StageInvalid { track, stage }) => Err(Rejection::at(
            RejectionCode::ExpectedStageInvalid,
            "/data/expected/stage",
            format!("{stage:?} is not a forward stage of the {track} track"),
        )),
    }
}

/// Why an event cannot be read as a fact of its Action.
#[derive(Debug)]
pub enum Unresolved {
    /// An expectation for an outcome that has no track.
    NoTrack(OutcomeId),
    /// An expected stage that is not a forward stage of the outcome's track.
    StageInvalid { track: Track, stage: String },
}

/// The fact an event contributes to its Action: the one mapping of events to facts, for the
/// writer (after [`check`]'s rules) and for a rebuild from the log alike, so that the two
/// can never read an event differently. `track_of` gives an outcome's track in the Action's
/// record so far; it is asked only for an `outcome.expectation_revised`. `None` for a review.
pub fn fact(
    kind: &EventKind,
    track_of: impl FnOnce(&OutcomeId) -> Option<Track>,
) -> Result<Option<Fact>, Unresolved> {
    Ok(Some(match kind {
        EventKind::Registered { title } => Fact::Registered {
            title: title.clone(),
        },
        EventKind::Closed => Fact::Closed,
        EventKind::Track {
            outcome,
            stage,
            expected,
            title,
        } => Fact::Track {
            outcome: outcome.clone(),
            stage: *stage,
            expected: expected
                .as_ref()
                .map(|expected| resolve(stage.track, expected))
                .transpose()?,
            title: title.clone(),
        },
        EventKind::Verified { outcome } => Fact::Verified {
            outcome: outcome.clone(),
        },
        EventKind::Disputed { outcome } => Fact::Disputed {
            outcome: outcome.clone(),
        },
        EventKind::ExpectationRevised { outcome, expected } => {
            let track = track_of(outcome).ok_or_else(|| Unresolved::NoTrack(outcome.clone()))?;
            Fact::ExpectationRevised {
                outcome: outcome.clone(),
                expected: resolve(track, expected)?,
            }
        }
        EventKind::Retracted { target } => Fact::Retracted { target: *target },
        EventKind::ReviewCompleted | EventKind::ReviewPart => return Ok(None),
    }))
}

fn resolve(track: Track, expected: &ExpectedInput) -> Result<ExpectedStage, Unresolved> {
    let stage = track
        .forward_stage(&expected.stage)
        .ok_or_else(|| Unresolved::StageInvalid {
            track,
            stage: expected.stage.clone(),
        })?;
    Ok(ExpectedStage {
        stage,
        by: expected.by,
    })
}

/// The fields of a stored event that a rebuild reads; the rest of its JSON is skipped unparsed.
#[derive(Deserialize)]
struct StoredFields<'a> {
    seq: u64,
    event_id: EventId,
    #[serde(rename = "type", borrow)]
    event_type: std::borrow::Cow<'a, str>,
    action_id: ActionId,
    country: Country,
    #[serde(default)]
    outcome_id: Option<OutcomeId>,
    occurred_on: NaiveDate,
    #[serde(with = "super::event::timestamp")]
    recorded_at: DateTime<Utc>,
    #[serde(default)]
    evidence: Option<Vec<serde::de::IgnoredAny>>,
    data: StoredData,
}

#[derive(Deserialize)]
struct StoredData {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    expected: Option<ExpectedInput>,
    #[serde(default)]
    target_event_id: Option<EventId>,
}

impl StoredFields<'_> {
    /// The event as the writer read it when it was appended.
    fn kind(&self) -> Result<EventKind, String> {
        let data = &self.data;
        EventKind::from_fields(
            &self.event_type,
            self.outcome_id.clone(),
            data.title.clone(),
            data.target_event_id,
            || Ok(data.expected.clone()),
        )
        .map_err(|error| match error {
            KindError::UnknownType => format!("seq {}: unknown type {}", self.seq, self.event_type),
            KindError::Shape(message) => format!("seq {}: {message}", self.seq),
        })
    }
}

/// A stored event of the log, read for the fold.
pub struct LoggedFact {
    pub action_id: ActionId,
    pub country: Country,
    pub event: FoldEvent,
}

/// Reads one stored event's JSON as a fact of its Action, through [`fact`] as the writer did.
/// `record_of` gives the Action's record so far, asked for only when an expectation's stage
/// must be resolved on the outcome's track. `Ok(None)` for a review. Never judges: stored events
/// passed [`check`] when they were appended.
pub fn fact_from_stored(
    json: &[u8],
    record_of: impl FnOnce(&ActionId) -> Option<ActionRecord>,
) -> Result<Option<LoggedFact>, String> {
    let stored: StoredFields =
        serde_json::from_slice(json).map_err(|e| format!("stored event: {e}"))?;
    let kind = stored.kind()?;
    let track_of = |outcome: &OutcomeId| {
        let record = record_of(&stored.action_id)?;
        record.outcome_track(outcome, &record.retracted(&Filters::default()))
    };
    let Some(fact) = fact(&kind, track_of)
        .map_err(|unresolved| format!("seq {}: {unresolved:?}", stored.seq))?
    else {
        return Ok(None);
    };
    Ok(Some(LoggedFact {
        event: FoldEvent {
            seq: stored.seq,
            event_id: stored.event_id,
            occurred_on: stored.occurred_on,
            recorded_at_us: stored.recorded_at.timestamp_micros(),
            evidence_count: stored.evidence.map_or(0, |evidence| evidence.len() as u16),
            fact,
        },
        action_id: stored.action_id,
        country: stored.country,
    }))
}
