//! What the pages say for the domain's codes: the words people use, never an enum's name.

use crate::domain::fold::{DateSource, ExpectedView, FlagKind, OutcomeState, Verification};
use chrono::NaiveDate;

pub fn state(state: OutcomeState) -> &'static str {
    match state {
        OutcomeState::InProgress => "in progress",
        OutcomeState::Achieved => "achieved",
        OutcomeState::Sustained => "sustained",
        OutcomeState::Regressed => "going backwards",
    }
}

pub fn verification(verification: Verification) -> &'static str {
    match verification {
        Verification::Verified => "verified",
        Verification::Disputed => "disputed",
        Verification::Reported => "reported, not verified",
    }
}

pub fn flag(flag: FlagKind) -> &'static str {
    match flag {
        FlagKind::Disputed => "disputed",
        FlagKind::NoOutcomes => "no outcomes reported",
        FlagKind::Overdue => "overdue",
        FlagKind::Regressed => "going backwards",
        FlagKind::Stale => "no recent report",
        FlagKind::Unverified => "not verified",
    }
}

/// A rejection code (CONTRACT.md §2.5) as words; the code itself is shown beside them.
pub fn rejection(code: &str) -> &'static str {
    match code {
        "malformed_json" => "not readable JSON",
        "payload_too_large" => "too large",
        "schema_violation" => "a field is missing or wrong",
        "unknown_type" => "not an event type the service knows",
        "forbidden_type" => "not an event this sender may submit",
        "event_id_conflict" => "the event id was used for other content",
        "track_mismatch" => "a stage of another track than the outcome's",
        "outcome_unknown" => "about an outcome with no stage reported yet",
        "expected_stage_invalid" => {
            "the expected stage is not a forward stage of the outcome's track"
        }
        "country_mismatch" => "the Action belongs to another country",
        "retraction_target_unknown" => "retracts an event that is not there",
        "occurred_in_future" => "dated in the future",
        "subject_mismatch" => "the NATS subject names another country or Action",
        _ => "rejected",
    }
}

/// A stage or track name as words: `in_force` → "in force".
pub fn name(code: &str) -> String {
    code.replace('_', " ")
}

/// An event's type as words: "legislation: pending", "verified", "registered".
pub fn event_type(code: &str) -> String {
    match code {
        "action.registered" => "Action registered".into(),
        "action.closed" => "Action closed".into(),
        "outcome.verified" => "outcome verified".into(),
        "outcome.disputed" => "outcome disputed".into(),
        "outcome.expectation_revised" => "expectation revised".into(),
        "event.retracted" => "event retracted".into(),
        "review.completed" => "review".into(),
        other => match other.split_once('.') {
            Some((track, stage)) => format!("{}: {}", name(track), name(stage)),
            None => name(other),
        },
    }
}

/// "substantial, medium confidence": a contribution's level and confidence (§2.3) in words.
pub fn contribution(contribution: &crate::domain::contribution::Contribution) -> String {
    let level = match contribution.level.as_str() {
        "none_evident" => "none evident",
        "indirect" => "indirect",
        "contributory" => "contributory",
        "substantial" => "substantial",
        "decisive" => "decisive",
        other => other,
    };
    format!("{level}, {} confidence", contribution.confidence)
}

/// What a stage means, in a short line under its choice on the forms. Every stage of the
/// domain's table has one (a test reads the table).
pub fn stage_help(track: &str, stage: &str) -> &'static str {
    match (track, stage) {
        ("legislation", "identified") => {
            "the need for a law or an amendment is named by those who could change it"
        }
        ("legislation", "drafting") => "a draft text is being written",
        ("legislation", "tabled") => "the draft is formally before parliament or the cabinet",
        ("legislation", "pending") => "it awaits a vote or a signature; the change is not law yet",
        ("legislation", "adopted") => "passed or signed: the law exists",
        ("legislation", "in_force") => "the law has entered into force",
        ("legislation", "implemented") => "the law is applied in practice, with rules and budget",
        ("legislation", "stalled") => "no movement for a long time, not formally dropped",
        ("legislation", "withdrawn") => "the draft was taken back by those who tabled it",
        ("legislation", "rejected") => "voted down or refused",
        ("legislation", "repealed") => "the law was adopted and later annulled",
        ("policy", "agenda") => "the issue is on a ministry's or the government's agenda",
        ("policy", "drafting") => "a policy or strategy text is being written",
        ("policy", "consultation") => "the draft is out for consultation with other bodies",
        ("policy", "final_approval") => "in the final stages of approval",
        ("policy", "ratified") => "approved or ratified: the policy is official",
        ("policy", "implementation_started") => "first measures under the policy have begun",
        ("policy", "implemented") => "the policy is carried out as a matter of course",
        ("policy", "stalled") => "no movement for a long time, not formally dropped",
        ("policy", "shelved") => "put aside by the authority that owned it",
        ("policy", "superseded") => "replaced by another policy",
        ("protocol", "review_initiated") => "a review of a procedure or protocol has begun",
        ("protocol", "revised") => "a revised text exists, not yet endorsed",
        ("protocol", "endorsed") => "the revised protocol is officially endorsed",
        ("protocol", "in_use") => "staff follow the protocol in their work",
        ("protocol", "institutionalised") => {
            "built into training, rules or budgets: it outlasts the people who made it"
        }
        ("protocol", "stalled") => "no movement for a long time, not formally dropped",
        ("protocol", "abandoned") => "the revision was dropped",
        ("mechanism", "proposed") => "a focal point, working group or body is proposed",
        ("mechanism", "established") => "it is formally set up (named, mandated)",
        ("mechanism", "operational") => "it meets or acts regularly",
        ("mechanism", "institutionalised") => "it has a lasting mandate, budget or legal basis",
        ("mechanism", "dormant") => "it exists on paper but no longer meets or acts",
        ("mechanism", "dissolved") => "it was formally ended",
        ("network", "created") => "people or institutions have started to exchange",
        ("network", "active") => "they exchange regularly",
        ("network", "formalised") => {
            "the exchange is agreed in writing (an MoU, terms of reference)"
        }
        ("network", "sustained") => "it has lasted on its own for years",
        ("network", "dormant") => "the exchange has stopped",
        ("practice", "awareness") => "officials know of the new practice",
        ("practice", "applied") => "officials apply it in their work",
        ("practice", "routine") => "it is the usual way of working",
        ("practice", "diffused") => "it has spread to other units or institutions",
        ("practice", "lapsed") => "officials no longer apply it",
        _ => "",
    }
}

/// `31 May 2019`.
pub fn date(date: NaiveDate) -> String {
    use chrono::Datelike;
    format!(
        "{} {} {}",
        date.day(),
        MONTHS[date.month0() as usize],
        date.year()
    )
}

/// `20 Nov 2018`, for a table's narrow column.
pub fn short_date(date: NaiveDate) -> String {
    use chrono::Datelike;
    let month = MONTHS[date.month0() as usize];
    format!("{} {} {}", date.day(), &month[..3], date.year())
}

// By hand: chrono's `format` reads its pattern again on every call, on every date of a page.
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// "adopted by 31 May 2019 (stated)", or "(default)" for an expectation the rules gave.
pub fn expected(expected: &ExpectedView) -> String {
    expectation(expected.stage, expected.by, expected.date_source)
}

/// An expectation from its parts (as a view's JSON gives them).
pub fn expectation(stage: &str, by: NaiveDate, source: DateSource) -> String {
    let source = match source {
        DateSource::Explicit => "stated",
        DateSource::Defaulted => "default",
    };
    format!("{} by {} ({source})", name(stage), date(by))
}

/// A query-string value, percent-encoded; `/` is kept, so a path in `next=` stays readable.
pub fn url_encode(text: &str) -> String {
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(text, VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_words() {
        assert_eq!(state(OutcomeState::InProgress), "in progress");
        assert_eq!(name("in_force"), "in force");
        let by = NaiveDate::from_ymd_opt(2019, 5, 31).unwrap();
        let view = ExpectedView {
            stage: "adopted",
            by,
            date_source: DateSource::Explicit,
        };
        assert_eq!(expected(&view), "adopted by 31 May 2019 (stated)");
        for day in [
            by,
            NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
            NaiveDate::MIN,
        ] {
            assert_eq!(date(day), day.format("%-d %B %Y").to_string());
            assert_eq!(short_date(day), day.format("%-d %b %Y").to_string());
        }
        for track in crate::domain::tracks::Track::all() {
            for stage in track.stages() {
                assert_ne!(
                    stage_help(track.name(), stage.name()),
                    "",
                    "{stage:?} has help"
                );
            }
        }
        for code in crate::domain::validate::RejectionCode::ALL {
            assert_ne!(rejection(code.as_str()), "rejected", "{code:?} has words");
        }
        assert_eq!(
            url_encode("/actions/X?as_of=2019-01-01&a=b"),
            "/actions/X%3Fas_of%3D2019-01-01%26a%3Db"
        );
    }
}
