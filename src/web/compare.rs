//! `/actions/{id}/compare` (CONTRACT.md §4.5): what changed for one Action between two points
//! of §3.1, side by side, with quick choices ("as known at the last review", "one year ago")
//! against now.

use super::form::{asked, kept_query, Field, Form};
use super::pages::{flag_rows, FlagRow};
use super::{render, words, Chrome, PageCaller, PageError};
use crate::api::actions::{compare_filters, compared, COMPARE_PARAMS};
use crate::api::{blocking, ApiError, Query};
use crate::app::App;
use crate::domain::compare::{Change, Side};
use crate::domain::fold::{OutcomeState, Verification};
use crate::domain::ids::ActionId;
use crate::queries;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One field that differs: its name and each side's value, in words.
struct FieldRow {
    name: &'static str,
    a: String,
    b: String,
}

struct ChangeRow {
    outcome_id: String,
    title: String,
    change: &'static str,
    fields: Vec<FieldRow>,
}

/// A quick choice: its words and the query it asks.
struct Quick {
    label: String,
    query: String,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    chrome: Chrome,
    action_id: String,
    title: String,
    country: String,
    side_a: String,
    side_b: String,
    rows: Vec<ChangeRow>,
    flags_added: Vec<FlagRow>,
    flags_removed: Vec<FlagRow>,
    sides: Vec<SideForm>,
    unknown: Option<String>,
    quick: Vec<Quick>,
    /// The two points as asked, for the link to the JSON.
    json_query: String,
    /// Whether every field asked read: if not, the page shows the form and its errors only.
    readable: bool,
}

/// One side's part of the form.
struct SideForm {
    legend: &'static str,
    inputs: Vec<Input>,
}

struct Input {
    key: &'static str,
    label: &'static str,
    kind: &'static str,
    hint: &'static str,
    value: String,
    error: Option<String>,
}

fn side_forms(mut fields: BTreeMap<&'static str, Field>) -> Vec<SideForm> {
    let inputs = |prefix: &str, fields: &mut BTreeMap<&'static str, Field>| {
        [
            ("as_of", "As of (date)", "date", ""),
            (
                "known_at",
                "As known at (time, UTC)",
                "text",
                "2019-06-30T00:00:00Z",
            ),
            ("until_seq", "As known at log position", "number", ""),
        ]
        .into_iter()
        .filter_map(|(name, label, kind, hint)| {
            let key = *COMPARE_PARAMS
                .iter()
                .find(|key| key.strip_prefix(prefix) == Some(name))?;
            let field = fields.remove(key).unwrap_or_default();
            Some(Input {
                key,
                label,
                kind,
                hint,
                value: field.value,
                error: field.error,
            })
        })
        .collect()
    };
    vec![
        SideForm {
            legend: "Left (before): empty fields mean now",
            inputs: inputs("a_", &mut fields),
        },
        SideForm {
            legend: "Right (after): empty fields mean now",
            inputs: inputs("b_", &mut fields),
        },
    ]
}

pub async fn page(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    Path(id): Path<String>,
    query: Query,
) -> Result<Response, PageError> {
    let query = asked(&query);
    let ((a, b), faults) = compare_filters(&query);
    let form = Form::new(&query, COMPARE_PARAMS, &[COMPARE_PARAMS], faults);
    let status = form.status();
    let readable = status.is_success();
    let json_query = kept_query(&query, COMPARE_PARAMS);
    let action_id =
        ActionId::parse(&id).map_err(|_| ApiError::NotFound(format!("no Action {id:?}")))?;
    let html = blocking(move || {
        let compared = compared(&app, &caller, &action_id, (&a, &b))?;
        // The last review that read this Action's country, for "as known at the last review".
        let last_review =
            queries::newest_review(&app.store, app.durable_seq().saturating_add(1), |head| {
                head.country.as_ref().is_none_or(|c| *c == compared.country)
            })?;
        let mut quick = Vec::new();
        if let Some((_, review)) = last_review {
            quick.push(Quick {
                label: format!(
                    "As known at the last review (status on {}, log position {}) against now",
                    words::date(review.as_of),
                    review.until_seq
                ),
                query: format!("?a_until_seq={}", review.until_seq),
            });
        }
        let now = chrono::Utc::now();
        let year_ago = now - chrono::Duration::days(365);
        quick.push(Quick {
            label: format!(
                "One year ago (as the page stood on {}) against now",
                words::date(year_ago.date_naive())
            ),
            query: format!(
                "?a_as_of={}&a_known_at={}",
                year_ago.date_naive(),
                words::url_encode(&year_ago.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            ),
        });
        let comparison = &compared.comparison;
        let title_of = |outcome_id: &str| {
            compared
                .outcome_titles
                .get(outcome_id)
                .cloned()
                .unwrap_or_default()
        };
        let rows = comparison
            .outcomes
            .iter()
            .map(|change| ChangeRow {
                outcome_id: change.outcome_id.to_string(),
                title: title_of(change.outcome_id.as_str()),
                change: match change.change {
                    Change::Added => "new on the right",
                    Change::Removed => "gone on the right",
                    Change::Changed => "changed",
                },
                // Any field not in the order (a new one) comes last, never dropped.
                fields: FIELD_ORDER
                    .iter()
                    .filter_map(|name| change.fields.get_key_value(*name))
                    .chain(
                        change
                            .fields
                            .iter()
                            .filter(|(name, _)| !FIELD_ORDER.contains(&name.as_str())),
                    )
                    .map(|(name, pair)| FieldRow {
                        name: field_label(name),
                        a: value_words(name, &pair[0]),
                        b: value_words(name, &pair[1]),
                    })
                    .collect(),
            })
            .collect();
        let flag_rows = |flags| {
            flag_rows(flags, |outcome| {
                outcome.map_or("the Action".into(), |id| title_of(id.as_str()))
            })
        };
        render(ComparePage {
            chrome,
            action_id: comparison.action_id.to_string(),
            title: compared
                .title
                .clone()
                .unwrap_or_else(|| "(not registered)".into()),
            country: compared.country.to_string(),
            side_a: side_words(&comparison.a),
            side_b: side_words(&comparison.b),
            flags_added: flag_rows(&comparison.flags.added),
            flags_removed: flag_rows(&comparison.flags.removed),
            rows,
            sides: side_forms(form.fields),
            unknown: form.unknown,
            quick,
            json_query,
            readable,
        })
    })
    .await?;
    Ok((status, html).into_response())
}

/// A side's filters in words: "now", or "as of 1 March 2019, as known at log position 3".
fn side_words(side: &Side) -> String {
    let mut parts = Vec::new();
    if let Some(as_of) = side.as_of {
        parts.push(format!("as of {}", words::date(as_of)));
    }
    if let Some(until_seq) = side.until_seq {
        parts.push(format!("as known at log position {until_seq}"));
    }
    if let Some(known_at) = side.known_at {
        parts.push(format!(
            "as known at {}",
            known_at.format("%-d %B %Y %H:%M UTC")
        ));
    }
    match parts.is_empty() {
        true => format!("now (as of {})", words::date(side.reference_date)),
        false => parts.join(", "),
    }
}

/// The outcome fields of §3 in the order a person reads them.
const FIELD_ORDER: [&str; 11] = [
    "stage",
    "stage_since",
    "state",
    "highest_stage",
    "expected",
    "verification",
    "title",
    "track",
    "event_count",
    "evidence_count",
    "last_event_on",
];

/// An outcome field of §3 in words.
fn field_label(name: &str) -> &'static str {
    match name {
        "track" => "Track",
        "title" => "Title",
        "stage" => "Stage",
        "stage_since" => "Stage since",
        "highest_stage" => "Highest stage reached",
        "state" => "State",
        "expected" => "Expected",
        "verification" => "Verification",
        "evidence_count" => "Evidence links",
        "event_count" => "Events",
        "last_event_on" => "Last report",
        _ => "Other",
    }
}

/// A field's value in words; `null` as a dash (not there on that side, or none).
fn value_words(name: &str, value: &Value) -> String {
    let text = value.as_str().unwrap_or_default();
    match (name, value) {
        (_, Value::Null) => "—".into(),
        ("stage" | "highest_stage" | "track", _) => words::name(text),
        ("stage_since" | "last_event_on", _) => date_words(text),
        ("state", _) => OutcomeState::parse(text)
            .map_or_else(|| text.to_owned(), |s| words::state(s).to_owned()),
        ("verification", _) => serde_json::from_value::<Verification>(value.clone())
            .map_or_else(|_| text.to_owned(), |v| words::verification(v).to_owned()),
        ("expected", Value::Object(expected)) => {
            let part = |key: &str| expected.get(key).cloned().unwrap_or(Value::Null);
            match (
                serde_json::from_value(part("by")),
                serde_json::from_value(part("date_source")),
            ) {
                (Ok(by), Ok(source)) => {
                    words::expectation(part("stage").as_str().unwrap_or_default(), by, source)
                }
                _ => value.to_string(),
            }
        }
        (_, Value::String(text)) => text.clone(),
        (_, other) => other.to_string(),
    }
}

fn date_words(text: &str) -> String {
    text.parse().map_or_else(|_| text.to_owned(), words::date)
}
