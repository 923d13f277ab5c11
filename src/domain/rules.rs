//! Stateful rules (CONTRACT.md §2.4–2.5): whether an event that passed the schema fits the
//! Action as the log knows it, and the fact it contributes if so. Pure: the record and today's
//! date are passed in.

use super::event::{EventKind, ExpectedInput};
use super::fold::{ActionRecord, ExpectedStage, Fact, Filters};
use super::ids::OutcomeId;
use super::tracks::Track;
use super::validate::{Parsed, Rejection, RejectionCode};
use chrono::NaiveDate;

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
    Ok(match &parsed.kind {
        EventKind::Registered { title } => Fact::Registered {
            title: title.clone(),
        },
        EventKind::Closed => Fact::Closed,
        EventKind::Track {
            outcome,
            stage,
            expected,
            title,
        } => {
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
            Fact::Track {
                outcome: outcome.clone(),
                stage: *stage,
                expected: expected
                    .as_ref()
                    .map(|expected| resolve(stage.track, expected))
                    .transpose()?,
                title: title.clone(),
            }
        }
        EventKind::Verified { outcome } => {
            known_track(outcome)?;
            Fact::Verified {
                outcome: outcome.clone(),
            }
        }
        EventKind::Disputed { outcome } => {
            known_track(outcome)?;
            Fact::Disputed {
                outcome: outcome.clone(),
            }
        }
        EventKind::ExpectationRevised { outcome, expected } => {
            let track = known_track(outcome)?;
            Fact::ExpectationRevised {
                outcome: outcome.clone(),
                expected: resolve(track, expected)?,
            }
        }
        EventKind::Retracted { target } => {
            let found = record.and_then(|record| record.find(target));
            match found {
                Some(event) if !matches!(event.fact, Fact::Retracted { .. }) => {
                    Fact::Retracted { target: *target }
                }
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
        EventKind::ReviewCompleted => unreachable!("reviews are appended without an Action record"),
    })
}

fn resolve(track: Track, expected: &ExpectedInput) -> Result<ExpectedStage, Rejection> {
    let stage = track.forward_stage(&expected.stage).ok_or_else(|| {
        Rejection::at(
            RejectionCode::ExpectedStageInvalid,
            "/data/expected/stage",
            format!(
                "{:?} is not a forward stage of the {track} track",
                expected.stage
            ),
        )
    })?;
    Ok(ExpectedStage {
        stage,
        by: expected.by,
    })
}
