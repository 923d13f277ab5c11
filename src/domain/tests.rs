//! Unit tests of the pure domain: schemas, rules, the fold, time travel and flags.
//! Events go through the same path as in the service: schema, then rules, then the record.

use super::event::EventKind;
use super::fold::{
    ActionRecord, ActionStatus, DateSource, Filters, FlagKind, FoldEvent, OutcomeState,
    Verification, ViewRules,
};
use super::ids::ActionId;
use super::rules;
use super::tracks::Track;
use super::validate::{Origin, Rejection, RejectionCode, Schemas};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(Schemas::load)
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

const ACTION: &str = "MIEUX-TH-2014-01";
const TODAY: &str = "2026-11-28";

fn event(event_type: &str, outcome: Option<&str>, occurred_on: &str, data: Value) -> Value {
    let mut event = json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "type": event_type,
        "action_id": ACTION,
        "country": "TH",
        "occurred_on": occurred_on,
        "reported_by": "fo-bangkok",
        "data": data,
    });
    if let Some(outcome) = outcome {
        event["outcome_id"] = json!(outcome);
    }
    event
}

fn track(event_type: &str, occurred_on: &str) -> Value {
    event(event_type, Some("vot-protocol"), occurred_on, json!({}))
}

/// An in-memory log of one Action: schema, rules, then the record, as the writer does.
struct Log {
    record: Option<ActionRecord>,
    next_seq: u64,
}

impl Log {
    fn new() -> Log {
        Log {
            record: None,
            next_seq: 1,
        }
    }

    fn submit(&mut self, value: Value) -> Result<u64, Rejection> {
        let parsed = schemas().parse_value(value, Origin::Client)?;
        let fact = rules::check(self.record.as_ref(), &parsed, date(TODAY))?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let envelope = parsed.envelope;
        let recorded_at: DateTime<Utc> = Utc.timestamp_opt(1_700_000_000 + seq as i64, 0).unwrap();
        self.record
            .get_or_insert_with(|| {
                ActionRecord::new(envelope.action_id.clone(), envelope.country.clone())
            })
            .push(FoldEvent {
                seq,
                event_id: envelope.event_id,
                occurred_on: envelope.occurred_on,
                recorded_at_us: recorded_at.timestamp_micros(),
                evidence_count: envelope.evidence.map_or(0, |e| e.len() as u16),
                fact,
            });
        Ok(seq)
    }

    fn ok(&mut self, value: Value) -> u64 {
        self.submit(value).expect("accepted")
    }

    fn code(&mut self, value: Value) -> RejectionCode {
        self.submit(value).expect_err("rejected").code
    }

    fn status(&self, filters: Filters, reference: &str) -> Option<ActionStatus> {
        let rules = ViewRules::default();
        let view = self.record.as_ref()?.view(&filters, &rules)?;
        Some(ActionStatus::new(view, &rules, date(reference)))
    }

    fn now(&self, reference: &str) -> ActionStatus {
        self.status(Filters::default(), reference).expect("a view")
    }
}

fn flag_names(status: &ActionStatus) -> Vec<&'static str> {
    status.flags.iter().map(|flag| flag.flag.as_str()).collect()
}

#[test]
fn a_late_report_about_an_earlier_date_does_not_replace_the_current_stage() {
    let mut log = Log::new();
    log.ok(track("legislation.pending", "2018-11-20"));
    log.ok(track("legislation.drafting", "2018-03-01"));
    let outcome = &log.now(TODAY).view.outcomes[0];
    assert_eq!(outcome.stage, "pending");
    assert_eq!(outcome.stage_since, date("2018-11-20"));
    assert_eq!(outcome.state, OutcomeState::InProgress);
    assert_eq!(outcome.event_count, 2);
}

#[test]
fn a_lower_stage_at_a_later_date_makes_the_outcome_regressed() {
    let mut log = Log::new();
    log.ok(track("legislation.adopted", "2019-05-01"));
    log.ok(track("legislation.pending", "2020-01-01"));
    let status = log.now(TODAY);
    let outcome = &status.view.outcomes[0];
    assert_eq!(outcome.state, OutcomeState::Regressed);
    assert_eq!(outcome.highest_stage, Some("adopted"));
    assert!(flag_names(&status).contains(&"regressed"));
}

#[test]
fn an_exit_stage_makes_the_outcome_regressed() {
    let mut log = Log::new();
    log.ok(track("legislation.pending", "2019-05-01"));
    log.ok(track("legislation.stalled", "2020-01-01"));
    assert_eq!(
        log.now(TODAY).view.outcomes[0].state,
        OutcomeState::Regressed
    );
}

#[test]
fn a_lower_stage_on_the_same_date_is_not_a_regression() {
    let mut log = Log::new();
    log.ok(track("legislation.adopted", "2019-05-01"));
    log.ok(track("legislation.pending", "2019-05-01"));
    let outcome = &log.now(TODAY).view.outcomes[0];
    assert_eq!(outcome.stage, "pending");
    assert_eq!(outcome.state, OutcomeState::InProgress);
}

#[test]
fn achieved_and_sustained_follow_the_track_thresholds() {
    let mut log = Log::new();
    log.ok(track("legislation.adopted", "2019-05-01"));
    assert_eq!(
        log.now(TODAY).view.outcomes[0].state,
        OutcomeState::Achieved
    );
    log.ok(track("legislation.implemented", "2021-05-01"));
    assert_eq!(
        log.now(TODAY).view.outcomes[0].state,
        OutcomeState::Sustained
    );
}

#[test]
fn a_retraction_applies_under_any_as_of_but_not_under_an_until_seq_before_it() {
    let mut log = Log::new();
    log.ok(track("legislation.pending", "2018-11-20"));
    let adopted = track("legislation.adopted", "2019-06-01");
    let adopted_id = adopted["event_id"].as_str().unwrap().to_owned();
    let adopted_seq = log.ok(adopted);
    let retraction_seq = log.ok(event(
        "event.retracted",
        None,
        "2025-01-01",
        json!({"target_event_id": adopted_id, "reason": "entered against the wrong Action"}),
    ));
    assert_eq!(log.now(TODAY).view.outcomes[0].stage, "pending");
    // Valid time before the retraction's own date: the retraction still applies.
    let as_of = Filters {
        as_of: Some(date("2020-01-01")),
        ..Filters::default()
    };
    assert_eq!(
        log.status(as_of, "2020-01-01").unwrap().view.outcomes[0].stage,
        "pending"
    );
    // Transaction time before the retraction: the retracted event still shows.
    let before = Filters {
        until_seq: Some(retraction_seq - 1),
        ..Filters::default()
    };
    assert_eq!(
        log.status(before, TODAY).unwrap().view.outcomes[0].stage,
        "adopted"
    );
    let known_before = Filters {
        known_at: Some(
            Utc.timestamp_opt(1_700_000_000 + adopted_seq as i64, 0)
                .unwrap(),
        ),
        ..Filters::default()
    };
    assert_eq!(
        log.status(known_before, TODAY).unwrap().view.outcomes[0].stage,
        "adopted"
    );
    let known_after = Filters {
        known_at: Some(
            Utc.timestamp_opt(1_700_000_000 + retraction_seq as i64, 0)
                .unwrap(),
        ),
        ..Filters::default()
    };
    assert_eq!(
        log.status(known_after, TODAY).unwrap().view.outcomes[0].stage,
        "pending"
    );
}

#[test]
fn a_retraction_of_a_retraction_is_refused() {
    let mut log = Log::new();
    let first = track("legislation.pending", "2018-11-20");
    let first_id = first["event_id"].as_str().unwrap().to_owned();
    log.ok(first);
    let retraction = event(
        "event.retracted",
        None,
        "2019-01-01",
        json!({"target_event_id": first_id, "reason": "typo"}),
    );
    let retraction_id = retraction["event_id"].as_str().unwrap().to_owned();
    log.ok(retraction);
    let again = event(
        "event.retracted",
        None,
        "2019-01-02",
        json!({"target_event_id": retraction_id, "reason": "undo"}),
    );
    assert_eq!(log.code(again), RejectionCode::RetractionTargetUnknown);
    let unknown = event(
        "event.retracted",
        None,
        "2019-01-02",
        json!({"target_event_id": uuid::Uuid::new_v4().to_string(), "reason": "?"}),
    );
    assert_eq!(log.code(unknown), RejectionCode::RetractionTargetUnknown);
}

#[test]
fn a_view_with_no_event_left_after_the_filters_is_absent() {
    let mut log = Log::new();
    log.ok(track("legislation.pending", "2018-11-20"));
    assert!(log
        .status(
            Filters {
                as_of: Some(date("2018-11-19")),
                ..Filters::default()
            },
            "2018-11-19"
        )
        .is_none());
    assert!(log
        .status(
            Filters {
                until_seq: Some(0),
                ..Filters::default()
            },
            TODAY
        )
        .is_none());
}

#[test]
fn a_defaulted_expectation_is_stage_since_plus_180_days() {
    let mut log = Log::new();
    log.ok(track("legislation.pending", "2018-11-20"));
    let expected = log.now(TODAY).view.outcomes[0].expected.clone().unwrap();
    assert_eq!(expected.stage, "adopted");
    assert_eq!(expected.by, date("2019-05-19"));
    assert_eq!(expected.date_source, DateSource::Defaulted);
}

#[test]
fn an_explicit_expectation_holds_while_its_stage_is_ahead() {
    let mut log = Log::new();
    log.ok(event(
        "legislation.pending",
        Some("vot-protocol"),
        "2018-11-20",
        json!({"expected": {"stage": "adopted", "by": "2019-05-31"}}),
    ));
    let expected = log.now(TODAY).view.outcomes[0].expected.clone().unwrap();
    assert_eq!(
        (expected.stage, expected.by, expected.date_source),
        ("adopted", date("2019-05-31"), DateSource::Explicit)
    );
    log.ok(track("legislation.adopted", "2019-05-20"));
    // Achieved, and the expectation was reached: no expectation is left.
    assert_eq!(log.now(TODAY).view.outcomes[0].expected, None);
}

#[test]
fn a_revised_expectation_replaces_the_earlier_one() {
    let mut log = Log::new();
    log.ok(event(
        "legislation.pending",
        Some("vot-protocol"),
        "2018-11-20",
        json!({"expected": {"stage": "adopted", "by": "2019-05-31"}}),
    ));
    log.ok(event(
        "outcome.expectation_revised",
        Some("vot-protocol"),
        "2019-04-01",
        json!({"expected": {"stage": "adopted", "by": "2020-03-31"}, "reason": "parliament recess"}),
    ));
    assert_eq!(
        log.now(TODAY).view.outcomes[0]
            .expected
            .as_ref()
            .unwrap()
            .by,
        date("2020-03-31")
    );
}

#[test]
fn a_verification_dated_before_the_current_stage_does_not_count() {
    let mut log = Log::new();
    log.ok(track("legislation.adopted", "2019-05-01"));
    log.ok(event(
        "outcome.verified",
        Some("vot-protocol"),
        "2019-06-01",
        json!({"by": "evaluator"}),
    ));
    assert_eq!(
        log.now(TODAY).view.outcomes[0].verification,
        Verification::Verified
    );
    log.ok(track("legislation.in_force", "2019-09-01"));
    assert_eq!(
        log.now(TODAY).view.outcomes[0].verification,
        Verification::Reported
    );
    log.ok(event(
        "outcome.disputed",
        Some("vot-protocol"),
        "2019-09-01",
        json!({"by": "evaluator", "reason": "no gazette"}),
    ));
    assert_eq!(
        log.now(TODAY).view.outcomes[0].verification,
        Verification::Disputed
    );
}

#[test]
fn an_outcome_stays_on_the_track_of_its_first_track_event() {
    let mut log = Log::new();
    log.ok(track("legislation.pending", "2018-11-20"));
    assert_eq!(
        log.code(track("policy.ratified", "2019-01-01")),
        RejectionCode::TrackMismatch
    );
}

#[test]
fn a_retracted_first_track_event_frees_the_outcome_for_another_track() {
    let mut log = Log::new();
    let wrong = track("legislation.pending", "2018-11-20");
    let wrong_id = wrong["event_id"].as_str().unwrap().to_owned();
    log.ok(wrong);
    log.ok(event(
        "event.retracted",
        None,
        "2018-11-21",
        json!({"target_event_id": wrong_id, "reason": "wrong track"}),
    ));
    log.ok(track("protocol.revised", "2018-11-20"));
    assert_eq!(log.now(TODAY).view.outcomes[0].track, "protocol");
}

#[test]
fn an_expectation_stated_on_a_track_the_outcome_has_left_no_longer_applies() {
    let mut log = Log::new();
    let wrong = track("legislation.pending", "2018-11-20");
    let wrong_id = wrong["event_id"].as_str().unwrap().to_owned();
    log.ok(wrong);
    // Revised while the outcome was on the legislation track: "adopted" is a stage there.
    log.ok(event(
        "outcome.expectation_revised",
        Some("vot-protocol"),
        "2018-12-01",
        json!({"expected": {"stage": "adopted", "by": "2019-05-31"}, "reason": "committee"}),
    ));
    log.ok(event(
        "event.retracted",
        None,
        "2018-12-02",
        json!({"target_event_id": wrong_id, "reason": "wrong track"}),
    ));
    log.ok(track("protocol.review_initiated", "2018-11-20"));
    let outcome = log.now(TODAY).view.outcomes[0].clone();
    assert_eq!(outcome.track, "protocol");
    let expected = outcome.expected.expect("the protocol track's own default");
    assert_eq!(
        (expected.stage, expected.date_source),
        ("revised", DateSource::Defaulted),
        "not the legislation track's \"adopted\""
    );
}

#[test]
fn an_expected_stage_must_be_a_forward_stage_of_the_track() {
    let mut log = Log::new();
    let exit = event(
        "legislation.pending",
        Some("vot-protocol"),
        "2018-11-20",
        json!({"expected": {"stage": "stalled", "by": "2019-05-31"}}),
    );
    assert_eq!(log.code(exit), RejectionCode::ExpectedStageInvalid);
    let other_track = event(
        "legislation.pending",
        Some("vot-protocol"),
        "2018-11-20",
        json!({"expected": {"stage": "ratified", "by": "2019-05-31"}}),
    );
    assert_eq!(log.code(other_track), RejectionCode::ExpectedStageInvalid);
    log.ok(track("legislation.pending", "2018-11-20"));
    let revised = event(
        "outcome.expectation_revised",
        Some("vot-protocol"),
        "2019-01-01",
        json!({"expected": {"stage": "endorsed", "by": "2019-05-31"}, "reason": "x"}),
    );
    assert_eq!(log.code(revised), RejectionCode::ExpectedStageInvalid);
}

#[test]
fn an_action_keeps_the_country_it_was_first_seen_with() {
    let mut log = Log::new();
    log.ok(track("legislation.pending", "2018-11-20"));
    let mut elsewhere = track("legislation.adopted", "2019-01-01");
    elsewhere["country"] = json!("LA");
    assert_eq!(log.code(elsewhere), RejectionCode::CountryMismatch);
}

#[test]
fn a_verification_of_an_outcome_with_no_track_event_is_outcome_unknown() {
    let mut log = Log::new();
    let verified = event(
        "outcome.verified",
        Some("vot-protocol"),
        "2019-06-01",
        json!({"by": "evaluator"}),
    );
    assert_eq!(log.code(verified), RejectionCode::OutcomeUnknown);
}

#[test]
fn an_event_more_than_a_day_ahead_of_the_server_is_occurred_in_future() {
    let mut log = Log::new();
    log.ok(track("legislation.pending", "2026-11-29"));
    assert_eq!(
        log.code(track("legislation.adopted", "2026-11-30")),
        RejectionCode::OccurredInFuture
    );
}

#[test]
fn overdue_fires_the_day_after_the_expected_date_and_not_before() {
    let mut log = Log::new();
    log.ok(event(
        "legislation.pending",
        Some("vot-protocol"),
        "2018-11-20",
        json!({"expected": {"stage": "adopted", "by": "2019-05-31"}}),
    ));
    assert!(!flag_names(&log.now("2019-05-31")).contains(&"overdue"));
    let status = log.now("2019-06-01");
    let overdue = status
        .flags
        .iter()
        .find(|flag| flag.flag == FlagKind::Overdue)
        .expect("overdue");
    assert_eq!(overdue.detail, "adopted expected by 2019-05-31, 1 days ago");
}

#[test]
fn stale_fires_after_365_days_without_a_report_and_not_a_day_before() {
    let mut log = Log::new();
    log.ok(track("network.created", "2020-01-01"));
    // 2020-12-31 is 365 days later (2020 is a leap year): not yet.
    assert!(!flag_names(&log.now("2020-12-31")).contains(&"stale"));
    assert!(flag_names(&log.now("2021-01-01")).contains(&"stale"));
}

#[test]
fn stale_does_not_fire_for_sustained_or_regressed_outcomes() {
    let mut log = Log::new();
    log.ok(track("network.sustained", "2020-01-01"));
    assert!(!flag_names(&log.now("2025-01-01")).contains(&"stale"));
}

#[test]
fn unverified_fires_after_180_days_of_an_unverified_achievement_and_not_a_day_before() {
    let mut log = Log::new();
    log.ok(track("network.created", "2020-01-01"));
    assert!(!flag_names(&log.now("2020-06-29")).contains(&"unverified"));
    assert!(flag_names(&log.now("2020-06-30")).contains(&"unverified"));
    log.ok(event(
        "outcome.verified",
        Some("vot-protocol"),
        "2020-07-01",
        json!({"by": "evaluator"}),
    ));
    assert!(!flag_names(&log.now("2020-07-02")).contains(&"unverified"));
}

#[test]
fn no_outcomes_fires_a_year_after_registration_and_not_a_day_before() {
    let mut log = Log::new();
    log.ok(event(
        "action.registered",
        None,
        "2020-01-01",
        json!({"title": "Study visit", "modality": "study_visit", "partner_institutions": ["MSDHS"]}),
    ));
    let status = log.now("2020-12-31");
    assert!(status.view.registered && status.view.outcomes.is_empty());
    assert!(!flag_names(&status).contains(&"no_outcomes"));
    let status = log.now("2021-01-01");
    assert_eq!(flag_names(&status), vec!["no_outcomes"]);
    assert_eq!(status.flags[0].outcome_id, None);
}

#[test]
fn disputed_and_regressed_flags_follow_the_view() {
    let mut log = Log::new();
    log.ok(track("practice.applied", "2020-01-01"));
    log.ok(event(
        "outcome.disputed",
        Some("vot-protocol"),
        "2020-02-01",
        json!({"by": "evaluator", "reason": "not seen"}),
    ));
    assert!(flag_names(&log.now("2020-02-02")).contains(&"disputed"));
    log.ok(track("practice.lapsed", "2020-03-01"));
    let names = flag_names(&log.now("2020-03-02"));
    assert!(names.contains(&"regressed"));
    assert!(
        !names.contains(&"disputed"),
        "the dispute predates the current stage"
    );
}

#[test]
fn flags_are_sorted_by_outcome_then_flag() {
    let mut log = Log::new();
    log.ok(event(
        "practice.applied",
        Some("b-outcome"),
        "2019-01-01",
        json!({}),
    ));
    log.ok(event(
        "practice.awareness",
        Some("a-outcome"),
        "2019-01-01",
        json!({}),
    ));
    let status = log.now("2022-01-01");
    let keys: Vec<(String, &str)> = status
        .flags
        .iter()
        .map(|flag| {
            (
                flag.outcome_id.as_ref().unwrap().to_string(),
                flag.flag.as_str(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(
        keys.len(),
        4,
        "a: overdue+stale, b: stale+unverified: {keys:?}"
    );
}

#[test]
fn the_outcome_title_comes_from_its_lowest_seq_event_with_a_title() {
    let mut log = Log::new();
    log.ok(track("legislation.drafting", "2018-01-01"));
    log.ok(event(
        "legislation.pending",
        Some("vot-protocol"),
        "2018-11-20",
        json!({"title": "Victim protection protocol"}),
    ));
    log.ok(event(
        "legislation.adopted",
        Some("vot-protocol"),
        "2019-11-20",
        json!({"title": "Another"}),
    ));
    assert_eq!(
        log.now(TODAY).view.outcomes[0].title,
        "Victim protection protocol"
    );
}

// ---- schemas -------------------------------------------------------------------------------

fn valid_example(event_type: &str) -> Value {
    let outcome = Some("vot-protocol");
    match event_type {
        "action.registered" => event(
            event_type,
            None,
            "2014-03-01",
            json!({"title": "Study visit", "modality": "study_visit", "partner_institutions": ["MSDHS"], "start_on": "2014-03-01", "end_on": "2014-03-08", "theme": "trafficking"}),
        ),
        "action.closed" => event(event_type, None, "2014-04-01", json!({"summary": "done"})),
        "outcome.verified" => event(
            event_type,
            outcome,
            "2019-01-01",
            json!({"by": "evaluator", "note": "seen"}),
        ),
        "outcome.disputed" => event(
            event_type,
            outcome,
            "2019-01-01",
            json!({"by": "evaluator", "reason": "not seen"}),
        ),
        "outcome.expectation_revised" => event(
            event_type,
            outcome,
            "2019-01-01",
            json!({"expected": {"stage": "adopted", "by": "2020-01-01"}, "reason": "delay"}),
        ),
        "event.retracted" => event(
            event_type,
            None,
            "2019-01-01",
            json!({"target_event_id": "0193a1e2-7c4b-7d2a-9a51-2f0c3b7e9d10", "reason": "mistake"}),
        ),
        "review.completed" => {
            let mut review = event(
                event_type,
                None,
                "2026-10-01",
                json!({"review_id": "r1", "as_of": "2026-10-01", "until_seq": 3, "totals": {}, "findings": [], "highlights": []}),
            );
            review["action_id"] = json!("REVIEW");
            review["country"] = json!("XX");
            review
        }
        "review.part" => {
            let mut part = event(
                event_type,
                None,
                "2026-10-01",
                json!({"review_id": "r1", "index": 1, "findings": [], "highlights": []}),
            );
            part["action_id"] = json!("REVIEW");
            part["country"] = json!("XX");
            part
        }
        track_type => {
            let mut data = json!({
                "title": "Protocol revised", "description": "d", "social_actor": "MSDHS", "significance": "high",
                "contribution": {"level": "contributory", "confidence": "medium", "note": "n"},
                "note": "n"
            });
            if track_type.starts_with("mechanism.") {
                data["kind"] = json!("focal_point");
            }
            if track_type.starts_with("network.") {
                data["parties"] = json!(["Thai DSI", "EU agency"]);
            }
            let mut value = event(track_type, outcome, "2018-11-20", data);
            value["evidence"] = json!([{"title": "Minutes", "url": "https://example.org/m.pdf", "sha256": "a".repeat(64), "media_type": "application/pdf"}]);
            value["reported_at"] = json!("2018-11-21T10:00:00+07:00");
            value["lang"] = json!("en");
            value["schema_version"] = json!(1);
            value["correlation_id"] = json!("c-1");
            value["causation_id"] = json!("c-0");
            value
        }
    }
}

fn all_event_types() -> Vec<String> {
    let mut types: Vec<String> = [
        "action.registered",
        "action.closed",
        "outcome.verified",
        "outcome.disputed",
        "outcome.expectation_revised",
        "event.retracted",
        "review.completed",
        "review.part",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    for track in Track::all() {
        types.extend(track.stages().map(|stage| stage.event_type()));
    }
    types
}

fn schema_fault(value: Value) -> Rejection {
    let rejection = schemas()
        .parse_value(value, Origin::Service)
        .expect_err("a schema violation");
    assert_eq!(
        rejection.code,
        RejectionCode::SchemaViolation,
        "{rejection:?}"
    );
    rejection
}

fn has_pointer(rejection: &Rejection, pointer: &str) -> bool {
    rejection
        .details
        .iter()
        .any(|detail| detail.path.as_deref() == Some(pointer))
}

#[test]
fn the_schema_type_list_is_the_type_table() {
    let document: Value = serde_json::from_str(super::validate::SCHEMA_DOCUMENTS[0].1).unwrap();
    let mut in_schema: Vec<String> = document["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let mut in_table = all_event_types();
    in_schema.sort();
    in_table.sort();
    assert_eq!(in_schema, in_table);
    assert!(in_table.iter().all(|t| EventKind::is_known_type(t)));
}

#[test]
fn every_event_type_has_a_valid_example_that_is_accepted() {
    for event_type in all_event_types() {
        let parsed = schemas().parse_value(valid_example(&event_type), Origin::Service);
        assert!(parsed.is_ok(), "{event_type}: {parsed:?}");
    }
}

#[test]
fn every_event_type_reports_each_kind_of_fault_with_its_pointer() {
    for event_type in all_event_types() {
        let example = valid_example(&event_type);

        let mut missing = example.clone();
        missing.as_object_mut().unwrap().remove("reported_by");
        assert!(
            has_pointer(&schema_fault(missing), "/reported_by"),
            "{event_type}: missing field"
        );

        let mut extra = example.clone();
        extra["colour"] = json!("blue");
        assert!(
            has_pointer(&schema_fault(extra), "/colour"),
            "{event_type}: extra field"
        );

        let mut extra_data = example.clone();
        extra_data["data"]["colour"] = json!("blue");
        if event_type != "review.completed" {
            assert!(
                has_pointer(&schema_fault(extra_data), "/data/colour"),
                "{event_type}: extra data field"
            );
        }

        let mut bad_id = example.clone();
        bad_id["action_id"] = json!("mieux th");
        assert!(
            has_pointer(&schema_fault(bad_id), "/action_id"),
            "{event_type}: bad id"
        );

        let mut bad_event_id = example.clone();
        bad_event_id["event_id"] = json!("0193A1E2-7C4B-7D2A-9A51-2F0C3B7E9D10");
        assert!(
            has_pointer(&schema_fault(bad_event_id), "/event_id"),
            "{event_type}: uppercase uuid"
        );

        let mut bad_date = example.clone();
        bad_date["occurred_on"] = json!("2019-02-30");
        assert!(
            has_pointer(&schema_fault(bad_date), "/occurred_on"),
            "{event_type}: bad date"
        );

        let mut bad_lang = example.clone();
        bad_lang["lang"] = json!("english");
        assert!(
            has_pointer(&schema_fault(bad_lang), "/lang"),
            "{event_type}: bad lang"
        );
    }
}

#[test]
fn bad_enum_values_are_schema_violations_at_their_pointer() {
    let mut modality = valid_example("action.registered");
    modality["data"]["modality"] = json!("holiday");
    assert!(has_pointer(&schema_fault(modality), "/data/modality"));

    let mut significance = valid_example("legislation.pending");
    significance["data"]["significance"] = json!("huge");
    assert!(has_pointer(
        &schema_fault(significance),
        "/data/significance"
    ));

    let mut kind = valid_example("mechanism.established");
    kind["data"]["kind"] = json!("club");
    assert!(has_pointer(&schema_fault(kind), "/data/kind"));

    let mut country = valid_example("legislation.pending");
    country["country"] = json!("ZZ");
    assert!(has_pointer(&schema_fault(country), "/country"));

    let mut xx = valid_example("legislation.pending");
    xx["country"] = json!("XX");
    assert!(
        has_pointer(&schema_fault(xx), "/country"),
        "XX is only for reviews"
    );
}

#[test]
fn outcome_id_is_required_for_outcome_events_and_forbidden_otherwise() {
    let mut without = valid_example("network.created");
    without.as_object_mut().unwrap().remove("outcome_id");
    assert!(has_pointer(&schema_fault(without), "/outcome_id"));
    let mut with = valid_example("action.closed");
    with["outcome_id"] = json!("vot-protocol");
    assert!(has_pointer(&schema_fault(with), "/outcome_id"));
    let mut parties_elsewhere = valid_example("legislation.pending");
    parties_elsewhere["data"]["parties"] = json!(["x"]);
    assert!(has_pointer(
        &schema_fault(parties_elsewhere),
        "/data/parties"
    ));
}

#[test]
fn the_stateless_codes_are_given_before_the_schema() {
    let too_large = format!("{{\"x\":\"{}\"}}", "a".repeat(70_000));
    let code = |raw: &[u8], origin| schemas().parse_bytes(raw, origin).unwrap_err().code;
    assert_eq!(
        code(too_large.as_bytes(), Origin::Client),
        RejectionCode::PayloadTooLarge
    );
    assert_eq!(code(b"[1,2]", Origin::Client), RejectionCode::MalformedJson);
    assert_eq!(
        code(b"{\"a\":", Origin::Client),
        RejectionCode::MalformedJson
    );
    assert_eq!(
        code(&[0xff, 0xfe, b'{', b'}'], Origin::Client),
        RejectionCode::MalformedJson
    );
    let mut unknown = valid_example("legislation.pending");
    unknown["type"] = json!("legislation.celebrated");
    assert_eq!(
        code(unknown.to_string().as_bytes(), Origin::Client),
        RejectionCode::UnknownType
    );
    let review = valid_example("review.completed");
    assert_eq!(
        code(review.to_string().as_bytes(), Origin::Client),
        RejectionCode::ForbiddenType
    );
    assert!(schemas()
        .parse_bytes(review.to_string().as_bytes(), Origin::Service)
        .is_ok());
}

#[test]
fn defaults_are_filled_so_the_same_content_hashes_the_same() {
    let mut explicit = valid_example("action.closed");
    explicit["schema_version"] = json!(1);
    explicit["lang"] = json!("en");
    let mut implicit = explicit.clone();
    implicit.as_object_mut().unwrap().remove("schema_version");
    implicit.as_object_mut().unwrap().remove("lang");
    let a = schemas().parse_value(explicit, Origin::Client).unwrap();
    let b = schemas().parse_value(implicit, Origin::Client).unwrap();
    assert_eq!(a.hash, b.hash);
    assert_eq!(ActionId::parse(ACTION).unwrap(), a.envelope.action_id);
}

#[test]
fn an_event_value_is_measured_as_compact_json() {
    use crate::domain::event::EVENT_BYTES_MAX;
    // `{"x":"…"}` is 8 bytes around the string; a quote inside is written as two.
    let sized = |len: usize| json!({ "x": format!("{}\"", "a".repeat(len - 8 - 2)) });
    let code = |value| {
        schemas()
            .parse_value(value, Origin::Client)
            .unwrap_err()
            .code
    };
    assert_eq!(
        serde_json::to_vec(&sized(EVENT_BYTES_MAX)).unwrap().len(),
        EVENT_BYTES_MAX
    );
    assert_ne!(code(sized(EVENT_BYTES_MAX)), RejectionCode::PayloadTooLarge);
    assert_eq!(
        code(sized(EVENT_BYTES_MAX + 1)),
        RejectionCode::PayloadTooLarge
    );
}

#[test]
fn a_report_in_parts_is_the_report_again_when_joined() {
    use super::review::{Finding, Highlight, ReviewReport};
    let finding = |n: usize| Finding {
        action_id: ActionId::parse(&format!("MIEUX-TH-{n:05}")).unwrap(),
        outcome_id: None,
        flag: "stale".into(),
        detail: format!("no report since 2019-01-01, {n} days ago"),
        action_title: Some(format!("Study visit {n}")),
        outcome_title: None,
    };
    let highlight = |n: usize| Highlight {
        action_id: ActionId::parse(&format!("MIEUX-LA-{n:05}")).unwrap(),
        outcome_id: super::ids::OutcomeId::parse(&format!("o-{n}")).unwrap(),
        track: "network".into(),
        stage: "formalised".into(),
        state: OutcomeState::Achieved,
        action_title: None,
        outcome_title: format!("Network {n}"),
        stage_since: date("2020-01-01"),
    };
    let report = ReviewReport {
        review_id: "review-large".into(),
        as_of: date("2026-10-01"),
        until_seq: 9,
        country: None,
        schedule_slot: None,
        totals: Default::default(),
        by_country: Default::default(),
        by_track: Default::default(),
        findings: (0..3000).map(finding).collect(),
        highlights: (0..700).map(highlight).collect(),
        parts: Vec::new(),
    };
    let budget = 16 * 1024;
    let (head, parts) = report.clone().into_parts(budget);
    assert!(head.findings.is_empty() && head.highlights.is_empty());
    assert!(parts.len() > 20, "{} parts", parts.len());
    for (n, part) in parts.iter().enumerate() {
        assert_eq!(part.index as usize, n + 1);
        let items: usize = part
            .findings
            .iter()
            .map(|f| serde_json::to_vec(f).unwrap().len() + 1)
            .chain(
                part.highlights
                    .iter()
                    .map(|h| serde_json::to_vec(h).unwrap().len() + 1),
            )
            .sum();
        assert!(items <= budget, "part {} holds {items} bytes", part.index);
        assert!(items > budget / 2 || n + 1 == parts.len() || !part.highlights.is_empty());
    }
    assert_eq!(head.joined(parts), report);
}

#[test]
fn a_review_whose_report_cannot_be_read_back_is_a_schema_violation() {
    let mut review = valid_example("review.completed");
    assert!(schemas()
        .parse_value(review.clone(), Origin::Service)
        .is_ok());
    // Passes the schema's few checks, but its findings are not findings.
    review["data"]["findings"] = json!([{"action_id": 7}]);
    let rejection = schemas()
        .parse_value(review, Origin::Service)
        .expect_err("a report the service cannot read");
    assert_eq!(rejection.code, RejectionCode::SchemaViolation);
    assert!(
        rejection.message.contains("review report"),
        "{}",
        rejection.message
    );
    let mut part = valid_example("review.part");
    part["data"]["highlights"] = json!(["not a highlight"]);
    assert_eq!(
        schemas()
            .parse_value(part, Origin::Service)
            .unwrap_err()
            .code,
        RejectionCode::SchemaViolation
    );
}
