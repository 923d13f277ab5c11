//! `/submit`: the follow-up forms (CONTRACT.md §4.4). A form's fields are named by the JSON
//! paths of the event they build (`data.expected.stage`, `evidence.0.url`); a post is turned
//! into that event and sent through `api::events::submit`, the path of `POST /v1/events`, so it
//! meets the same schema, role, country and retraction rules. Each rendered form carries an
//! `event_id` minted for it: sent twice, it gives one event and the answer `duplicate`.

use super::form::{check_csrf, choices, Choice, Field};
use super::{render, words, Chrome, PageCaller, PageError};
use crate::api::{ApiError, Caller, Query};
use crate::app::App;
use crate::domain::fold::ActionStatus;
use crate::domain::ids::ActionId;
use crate::domain::rights::Role;
use crate::domain::tracks::Track;
use crate::queries;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The forms, as `/submit?form=…` names them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Register,
    Report,
    Verify,
    Dispute,
    Expectation,
    Retract,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Register,
        Kind::Report,
        Kind::Verify,
        Kind::Dispute,
        Kind::Expectation,
        Kind::Retract,
    ];

    pub fn param(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Report => "report",
            Kind::Verify => "verify",
            Kind::Dispute => "dispute",
            Kind::Expectation => "expectation",
            Kind::Retract => "retract",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.param() == text)
    }

    pub fn heading(self) -> &'static str {
        match self {
            Kind::Register => "Register an Action",
            Kind::Report => "Report a stage of an outcome",
            Kind::Verify => "Verify an outcome",
            Kind::Dispute => "Dispute an outcome",
            Kind::Expectation => "Revise an expectation",
            Kind::Retract => "Retract an event",
        }
    }

    /// The form an event of `event_type` is built by.
    fn of_type(event_type: &str) -> Option<Kind> {
        match event_type {
            "action.registered" => Some(Kind::Register),
            "outcome.verified" => Some(Kind::Verify),
            "outcome.disputed" => Some(Kind::Dispute),
            "outcome.expectation_revised" => Some(Kind::Expectation),
            "event.retracted" => Some(Kind::Retract),
            other => crate::domain::tracks::parse_track_event_type(other).map(|_| Kind::Report),
        }
    }

    /// The event type this form builds (a report's: any stage; the role table treats them alike).
    fn event_type(self) -> &'static str {
        match self {
            Kind::Register => "action.registered",
            Kind::Report => "practice.awareness",
            Kind::Verify => "outcome.verified",
            Kind::Dispute => "outcome.disputed",
            Kind::Expectation => "outcome.expectation_revised",
            Kind::Retract => "event.retracted",
        }
    }

    /// Whether `role` may submit what this form builds (the domain's one table of rights).
    pub fn allowed(self, role: Role) -> bool {
        role.may_submit(self.event_type())
    }

    fn about_an_outcome(self) -> bool {
        matches!(self, Kind::Verify | Kind::Dispute | Kind::Expectation)
    }
}

/// The forms `role` may use, for the chooser and the Action page.
pub fn offered(role: Role) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|kind| kind.allowed(role))
        .collect()
}

/// A stage as the report form offers it: the event type, its words and what it means.
struct StageChoice {
    value: String,
    label: String,
    help: &'static str,
    exit: bool,
    selected: bool,
}

/// An outcome of the Action, as the forms name it: its id, title and where it stands.
struct OutcomeChoice {
    value: String,
    label: String,
    selected: bool,
}

/// The Action a form is about.
struct ActionInfo {
    action_id: String,
    title: String,
    country: String,
}

#[derive(Template)]
#[template(path = "submit.html")]
struct SubmitPage {
    chrome: Chrome,
    kind: Option<Kind>,
    /// The forms the caller may use (the chooser).
    offered: Vec<Kind>,
    action: Option<ActionInfo>,
    fields: BTreeMap<String, Field>,
    /// Errors no single field carries.
    general: Vec<String>,
    event_id: String,
    tracks: Vec<Choice>,
    track: Option<Track>,
    stages: Vec<StageChoice>,
    expected_stages: Vec<Choice>,
    outcomes: Vec<OutcomeChoice>,
    modalities: Vec<Choice>,
    significances: Vec<Choice>,
    levels: Vec<Choice>,
    confidences: Vec<Choice>,
    mechanism_kinds: Vec<Choice>,
    /// The country of a single-country field office: fixed, not asked.
    country_fixed: Option<String>,
    /// With auth off nobody is signed in: the form asks who reports.
    needs_reporter: bool,
    /// The event a retraction withdraws, in words.
    target: Option<String>,
    evidence_rows: Vec<usize>,
}

static NO_FIELD: Field = Field {
    value: String::new(),
    error: None,
};

impl SubmitPage {
    fn f(&self, name: &str) -> &Field {
        self.fields.get(name).unwrap_or(&NO_FIELD)
    }

    fn value(&self, name: &str) -> &str {
        &self.f(name).value
    }
}

/// How many evidence links a form offers.
const EVIDENCE_ROWS: usize = 3;

/// What a form was asked with (a GET's query, or a post's fields): the first value of each
/// name, trimmed.
type Given = BTreeMap<String, String>;

fn given_of(pairs: impl IntoIterator<Item = (String, String)>) -> Given {
    let mut given = Given::new();
    for (name, value) in pairs {
        given.entry(name).or_insert_with(|| value.trim().to_owned());
    }
    given
}

pub async fn page(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    query: Query,
) -> Result<Response, PageError> {
    let given = given_of(query.iter().map(|(k, v)| (k.clone(), v.clone())));
    let kind = match given.get("form").filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => Some(Kind::parse(text).ok_or_else(|| {
            ApiError::BadQuery(format!(
                "form must be one of {}, not {text:?}",
                Kind::ALL.map(Kind::param).join(", ")
            ))
        })?),
    };
    let event_id = uuid::Uuid::now_v7().to_string();
    let html = form_page(&app, &caller, chrome, kind, &given, Vec::new(), event_id).await?;
    Ok(html.into_response())
}

/// The form of `kind` for `caller`, filled with `given` and showing `faults` (field name or
/// `""` for the form as a whole, and the message).
async fn form_page(
    app: &Arc<App>,
    caller: &Caller,
    chrome: Chrome,
    kind: Option<Kind>,
    given: &Given,
    faults: Vec<(String, String)>,
    event_id: String,
) -> Result<axum::response::Html<String>, ApiError> {
    if let Some(kind) = kind {
        if !kind.allowed(caller.role) {
            return Err(ApiError::Forbidden(format!(
                "a {} may not {}",
                caller.role.label(),
                kind.heading().to_lowercase()
            )));
        }
    }
    // The Action the form is about: read, and refused when of another country.
    let action_id = given.get("action_id").filter(|id| !id.is_empty());
    let status: Option<ActionStatus> = match (kind, action_id) {
        (Some(Kind::Register), _) | (None, _) | (_, None) => None,
        (Some(_), Some(id)) => {
            let action_id =
                ActionId::parse(id).map_err(|_| ApiError::NotFound(format!("no Action {id:?}")))?;
            let reader = app.clone();
            let status = crate::api::blocking(move || {
                Ok(queries::status(
                    &reader.store,
                    reader.durable_seq(),
                    &action_id,
                    &Default::default(),
                    &reader.config.rules,
                )?)
            })
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no Action {id}")))?;
            caller.require_country(&status.view.country)?;
            Some(status)
        }
    };
    let mut fields: BTreeMap<String, Field> = given
        .iter()
        .filter(|(name, _)| name.as_str() != "csrf")
        .map(|(name, value)| {
            (
                name.clone(),
                Field {
                    value: value.clone(),
                    error: None,
                },
            )
        })
        .collect();
    // The track: a report's as chosen (or read from its type when posted again); an
    // expectation's, from its outcome.
    let track = match kind {
        Some(Kind::Report) => given
            .get("track")
            .and_then(|t| Track::parse(t))
            .or_else(|| {
                // Posted: the track its type names (a stage it does not have included).
                given
                    .get("type")
                    .and_then(|t| Track::parse(t.split('.').next().unwrap_or_default()))
            }),
        Some(Kind::Expectation) => status.as_ref().and_then(|status| {
            status
                .view
                .outcomes
                .iter()
                .find(|o| {
                    o.outcome_id.as_str() == given.get("outcome_id").map_or("", String::as_str)
                })
                .and_then(|o| Track::parse(o.track))
        }),
        _ => None,
    };
    // A report without its track (or with a type of no track) shows only the track's choice:
    // its faults are said above it.
    let choosing_track = kind == Some(Kind::Report) && track.is_none();
    let mut general = Vec::new();
    let fixed_country = matches!(&caller.countries, Some(c) if c.len() == 1);
    for (name, message) in faults {
        // A fault of a field this form does not show (a hidden one, or none) is said above it.
        let shown = !choosing_track
            && kind.is_some_and(|kind| shows(kind, &name, caller.name.is_none(), fixed_country));
        match fields.get_mut(&name) {
            _ if !shown => general.push(match name.is_empty() {
                true => message,
                false => format!("{name}: {message}"),
            }),
            Some(field) => field.error = Some(message),
            None => {
                fields.insert(
                    name,
                    Field {
                        value: String::new(),
                        error: Some(message),
                    },
                );
            }
        }
    }
    let field = |name: &str| fields.get(name).unwrap_or(&NO_FIELD);
    let outcomes_of = |track: Option<Track>| -> Vec<OutcomeChoice> {
        status
            .iter()
            .flat_map(|status| &status.view.outcomes)
            .filter(|outcome| track.is_none_or(|track| outcome.track == track.name()))
            .map(|outcome| OutcomeChoice {
                selected: field("outcome_id").value == outcome.outcome_id.as_str(),
                label: format!(
                    "{} ({}: {} since {}, {})",
                    outcome.title,
                    words::name(outcome.track),
                    words::name(outcome.stage),
                    words::date(outcome.stage_since),
                    words::state(outcome.state)
                ),
                value: outcome.outcome_id.to_string(),
            })
            .collect()
    };
    let outcomes = match kind {
        Some(Kind::Report) => outcomes_of(track),
        Some(kind) if kind.about_an_outcome() => outcomes_of(None),
        _ => Vec::new(),
    };
    let stages = track
        .into_iter()
        .flat_map(|track| track.stages())
        .map(|stage| StageChoice {
            value: stage.event_type(),
            label: words::name(stage.name()),
            help: words::stage_help(stage.track().name(), stage.name()),
            exit: stage.is_exit(),
            selected: field("type").value == stage.event_type(),
        })
        .collect();
    let expected_stages = choices(
        field("data.expected.stage"),
        track
            .into_iter()
            .flat_map(|track| track.stages())
            .filter(|stage| stage.rank().is_some())
            .map(|stage| (stage.name().to_owned(), words::name(stage.name()))),
    );
    let tracks = choices(
        field("track"),
        Track::all().map(|track| (track.name().to_owned(), words::name(track.name()))),
    );
    let listed = |name: &str, options: &[(&str, &str)]| {
        choices(
            field(name),
            options
                .iter()
                .map(|(value, label)| ((*value).to_owned(), (*label).to_owned())),
        )
    };
    let modalities = listed(
        "data.modality",
        &[
            ("expert_mission", "expert mission"),
            ("study_visit", "study visit"),
            ("training", "training"),
            ("workshop", "workshop"),
            ("mixed", "mixed"),
            ("other", "other"),
        ],
    );
    let significances = listed(
        "data.significance",
        &[("low", "low"), ("medium", "medium"), ("high", "high")],
    );
    let levels = listed(
        "data.contribution.level",
        &[
            ("none_evident", "none evident"),
            ("indirect", "indirect"),
            ("contributory", "contributory"),
            ("substantial", "substantial"),
            ("decisive", "decisive"),
        ],
    );
    let confidences = listed(
        "data.contribution.confidence",
        &[("low", "low"), ("medium", "medium"), ("high", "high")],
    );
    let mechanism_kinds = listed(
        "data.kind",
        &[
            ("focal_point", "focal point"),
            ("working_group", "working group"),
            ("coordination_body", "coordination body"),
            ("other", "other"),
        ],
    );
    let target = match (kind, &status) {
        (Some(Kind::Retract), Some(status)) => {
            let target = field("data.target_event_id").value.clone();
            event_words(app, &status.view.action_id, &target)?
        }
        _ => None,
    };
    let country_fixed = match &caller.countries {
        Some(countries) if countries.len() == 1 => Some(countries[0].to_string()),
        _ => None,
    };
    render(SubmitPage {
        chrome,
        kind,
        offered: offered(caller.role),
        action: status.as_ref().map(|status| ActionInfo {
            action_id: status.view.action_id.to_string(),
            title: status
                .view
                .title
                .clone()
                .unwrap_or_else(|| "(not registered yet)".into()),
            country: status.view.country.to_string(),
        }),
        general,
        event_id,
        tracks,
        track,
        stages,
        expected_stages,
        outcomes,
        modalities,
        significances,
        levels,
        confidences,
        mechanism_kinds,
        country_fixed,
        needs_reporter: caller.name.is_none(),
        target,
        evidence_rows: (0..EVIDENCE_ROWS).collect(),
        fields,
    })
}

/// Whether the form of `kind` shows the field `name` (so that its fault can sit beside it).
fn shows(kind: Kind, name: &str, needs_reporter: bool, fixed_country: bool) -> bool {
    let common = name == "occurred_on"
        || (name == "reported_by" && needs_reporter)
        || (kind != Kind::Retract && name.starts_with("evidence."));
    let own: &[&str] = match kind {
        Kind::Register => &[
            "action_id",
            "data.title",
            "data.modality",
            "data.partner_institutions",
            "data.start_on",
            "data.end_on",
        ],
        Kind::Report => &[
            "outcome_id",
            "type",
            "data.title",
            "data.description",
            "data.significance",
            "data.contribution.level",
            "data.contribution.confidence",
            "data.contribution.note",
            "data.expected.stage",
            "data.expected.by",
            "data.kind",
            "data.parties",
            "data.note",
        ],
        Kind::Verify => &["outcome_id", "data.by", "data.note"],
        Kind::Dispute => &["outcome_id", "data.by", "data.reason"],
        Kind::Expectation => &[
            "outcome_id",
            "data.expected.stage",
            "data.expected.by",
            "data.reason",
        ],
        Kind::Retract => &["data.target_event_id", "data.reason"],
    };
    common || own.contains(&name) || (kind == Kind::Register && name == "country" && !fixed_country)
}

/// An event of `action_id`, in words ("legislation: pending of vot-protocol, 20 November 2018,
/// log position 7"): what a retraction would withdraw, or what a form just recorded. `None`
/// when it is not that Action's, or not durable yet.
pub fn event_words(
    app: &Arc<App>,
    action_id: &ActionId,
    target: &str,
) -> Result<Option<String>, ApiError> {
    let Ok(target) = target.parse::<uuid::Uuid>() else {
        return Ok(None);
    };
    let Some((seq, event)) = queries::event_of(&app.store, action_id, &target)? else {
        return Ok(None);
    };
    if seq > app.durable_seq() {
        return Ok(None);
    }
    let what = words::event_type(event["type"].as_str().unwrap_or_default());
    let outcome = event["outcome_id"]
        .as_str()
        .map_or(String::new(), |id| format!(" of {id}"));
    let day = event["occurred_on"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .map_or(String::new(), |d| format!(", {}", words::date(d)));
    Ok(Some(format!("{what}{outcome}{day}, log position {seq}")))
}

/// `data.*` fields that hold one item per line.
const LINES: [&str; 2] = ["data.partner_institutions", "data.parties"];

/// The event a form's fields build: each non-empty field at its JSON path; `reported_by` the
/// signed-in principal's name unless given. Names the form uses for itself (`csrf`, `form`,
/// `track`) are not part of it; any other name goes in as asked, for the schema to judge.
fn envelope(given: &Given, caller: &Caller) -> Value {
    let mut event = Map::new();
    let mut data = Map::new();
    let mut evidence: BTreeMap<usize, Map<String, Value>> = BTreeMap::new();
    for (name, value) in given {
        if value.is_empty() || matches!(name.as_str(), "csrf" | "form" | "track") {
            continue;
        }
        if LINES.contains(&name.as_str()) {
            let items: Vec<Value> = value
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(|line| Value::String(line.to_owned()))
                .collect();
            data.insert(name["data.".len()..].to_owned(), Value::Array(items));
        } else if let Some(path) = name.strip_prefix("data.") {
            insert_path(&mut data, path, value);
        } else if let Some(rest) = name.strip_prefix("evidence.") {
            match rest
                .split_once('.')
                .and_then(|(n, key)| Some((n.parse().ok()?, key)))
            {
                Some((n, key)) => {
                    insert_path(evidence.entry(n).or_default(), key, value);
                }
                None => {
                    event.insert(name.clone(), Value::String(value.clone()));
                }
            }
        } else {
            event.insert(name.clone(), Value::String(value.clone()));
        }
    }
    if !event.contains_key("reported_by") {
        if let Some(name) = &caller.name {
            event.insert("reported_by".into(), Value::String(name.clone()));
        }
    }
    event.insert("data".into(), Value::Object(data));
    if !evidence.is_empty() {
        event.insert(
            "evidence".into(),
            Value::Array(evidence.into_values().map(Value::Object).collect()),
        );
    }
    Value::Object(event)
}

/// Sets `a.b.c` in `object` to `value`, making the objects on the way.
fn insert_path(object: &mut Map<String, Value>, path: &str, value: &str) {
    match path.split_once('.') {
        None => {
            object.insert(path.to_owned(), Value::String(value.to_owned()));
        }
        Some((head, rest)) => {
            let inner = object
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Value::Object(inner) = inner {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// The form field a rejection's JSON pointer names (`/data/expected/stage` →
/// `data.expected.stage`), or the field its code is about when it names none.
fn field_of(path: Option<&str>, code: &str) -> String {
    if let Some(path) = path.filter(|p| !p.is_empty() && *p != "/") {
        let name = path.trim_start_matches('/').replace('/', ".");
        // A whole list given one per line is one field.
        for list in LINES {
            if name.starts_with(list) {
                return list.to_owned();
            }
        }
        return name;
    }
    match code {
        "track_mismatch" | "unknown_type" | "forbidden_type" => "type",
        "outcome_unknown" => "outcome_id",
        "expected_stage_invalid" => "data.expected.stage",
        "country_mismatch" => "country",
        "retraction_target_unknown" => "data.target_event_id",
        "occurred_in_future" => "occurred_on",
        _ => "",
    }
    .to_owned()
}

/// A rejection as shown beside its field: the message, then the contract's code.
fn fault(code: &str, message: &str) -> String {
    format!("{message} ({code})")
}

/// `POST /submit`: the form's event, through the API's path; `303` to the Action's page when
/// recorded (or recorded already), else the form again, filled in, each error by its field.
pub async fn post(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let given = given_of(pairs);
    check_csrf(given.get("csrf").map_or("", String::as_str), &chrome.csrf)?;
    let kind = given
        .get("type")
        .and_then(|t| Kind::of_type(t))
        .or_else(|| given.get("form").and_then(|f| Kind::parse(f)));
    let event_id = given.get("event_id").cloned().unwrap_or_default();
    let event = envelope(&given, &caller);
    let outcome = crate::api::events::submit(&app, &caller, vec![event], true).await;
    let (status, faults, fresh_id) = match outcome {
        Ok(results) => {
            let result = results.into_iter().next().unwrap_or_default();
            match result["status"].as_str() {
                Some(answer @ ("accepted" | "duplicate")) => {
                    let action = given.get("action_id").cloned().unwrap_or_default();
                    let to = format!(
                        "/actions/{}?recorded={}{}",
                        words::url_encode(&action),
                        words::url_encode(result["event_id"].as_str().unwrap_or(&event_id)),
                        if answer == "duplicate" {
                            "&duplicate=true"
                        } else {
                            ""
                        }
                    );
                    return Ok(Redirect::to(&to).into_response());
                }
                _ => {
                    // Published, then refused when applied: the id is spent on the bus, so
                    // the form comes back with a new one.
                    let code = result["error"]["code"].as_str().unwrap_or("rejected");
                    let message = result["error"]["message"].as_str().unwrap_or_default();
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        vec![(field_of(None, code), fault(code, message))],
                        true,
                    )
                }
            }
        }
        Err(ApiError::Rejected(failures)) => {
            let status = failures
                .first()
                .map_or(StatusCode::UNPROCESSABLE_ENTITY, |(_, r)| {
                    crate::api::rejection_status(r.code)
                });
            let mut faults = Vec::new();
            for (_, rejection) in failures {
                let code = rejection.code.as_str();
                if rejection.details.is_empty() {
                    faults.push((field_of(None, code), fault(code, &rejection.message)));
                }
                for detail in rejection.details {
                    faults.push((
                        field_of(detail.path.as_deref(), code),
                        fault(code, &detail.message),
                    ));
                }
            }
            (status, faults, false)
        }
        Err(error @ (ApiError::Csrf(_) | ApiError::Internal(_))) => return Err(error.into()),
        Err(error) => {
            let (status, code, message) = error.parts();
            let message = match status {
                StatusCode::SERVICE_UNAVAILABLE => format!(
                    "{message}: nothing was recorded; send the form again (it is recorded once, however often it is sent)"
                ),
                _ => message,
            };
            (status, vec![(String::new(), fault(&code, &message))], false)
        }
    };
    let event_id = match fresh_id {
        true => uuid::Uuid::now_v7().to_string(),
        false => event_id,
    };
    let html = form_page(&app, &caller, chrome, kind, &given, faults, event_id).await?;
    Ok((status, html).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_named_by_json_paths_build_the_event() {
        let given = given_of(
            [
                ("csrf", "x"),
                ("form", "report"),
                ("track", "legislation"),
                ("type", "legislation.pending"),
                ("action_id", "MIEUX-TH-2014-01"),
                ("outcome_id", "vot-protocol"),
                ("country", "TH"),
                ("occurred_on", "2018-11-20"),
                ("data.title", " Protocol revised "),
                ("data.description", ""),
                ("data.expected.stage", "adopted"),
                ("data.expected.by", "2019-05-31"),
                ("data.parties", "Ministry\n\n  Police \n"),
                ("evidence.1.title", "Minutes"),
                ("evidence.1.url", "https://example.org/m.pdf"),
                ("evidence.0.title", "Letter"),
                ("evidence.2.title", ""),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let caller = Caller::open();
        assert_eq!(
            envelope(&given, &caller),
            json!({
                "type": "legislation.pending", "action_id": "MIEUX-TH-2014-01",
                "outcome_id": "vot-protocol", "country": "TH", "occurred_on": "2018-11-20",
                "data": {"title": "Protocol revised",
                         "expected": {"stage": "adopted", "by": "2019-05-31"},
                         "parties": ["Ministry", "Police"]},
                "evidence": [{"title": "Letter"},
                             {"title": "Minutes", "url": "https://example.org/m.pdf"}]
            })
        );
    }

    #[test]
    fn a_rejection_is_shown_by_the_field_it_names() {
        assert_eq!(
            field_of(Some("/data/expected/stage"), "x"),
            "data.expected.stage"
        );
        assert_eq!(field_of(Some("/evidence/0/url"), "x"), "evidence.0.url");
        assert_eq!(
            field_of(Some("/data/partner_institutions/1"), "x"),
            "data.partner_institutions"
        );
        assert_eq!(field_of(None, "track_mismatch"), "type");
        assert_eq!(field_of(Some(""), "occurred_in_future"), "occurred_on");
        assert_eq!(field_of(None, "event_id_conflict"), "");
    }
}
