//! `/` and `/actions/{id}`: the Actions in scope, and one Action's outcomes and flags.

use super::form::{asked, choices, time_travel_query, Choice, Field, Form, TIME_TRAVEL_FIELDS};
use super::known_reviews::review_choices;
use super::{render, words, Chrome, PageCaller, PageError};
use crate::api::{blocking, ApiError, Query, FILTER_PARAMS};
use crate::app::App;
use crate::domain::fold::{ActionStatus, FlagKind, OutcomeState};
use crate::domain::ids::ActionId;
use crate::domain::tracks::Track;
use crate::queries;
use askama::Template;
use axum::extract::{Path, State};
use std::sync::Arc;

/// One Action in the list, in words.
struct Row {
    action_id: String,
    country: String,
    title: String,
    outcomes: u32,
    in_progress: u32,
    achieved: u32,
    sustained: u32,
    regressed: u32,
    flags: Vec<String>,
    last_report: String,
}

/// One bar of a chart: its label, its number, and its length in the chart's units (0–100).
struct Bar {
    label: String,
    count: u32,
    length: u32,
}

fn bars(counts: Vec<(String, u32)>) -> Vec<Bar> {
    let most = counts
        .iter()
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0)
        .max(1);
    counts
        .into_iter()
        .map(|(label, count)| Bar {
            length: count * 100 / most,
            label,
            count,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    chrome: Chrome,
    reference: String,
    rows: Vec<Row>,
    fields: std::collections::BTreeMap<&'static str, Field>,
    countries: Vec<Choice>,
    tracks: Vec<Choice>,
    states: Vec<Choice>,
    flags: Vec<Choice>,
    unknown: Option<String>,
    by_state: Vec<Bar>,
    by_country: Vec<Bar>,
    /// The time-travel part of the query, kept in every link to an Action.
    keep: String,
    /// How many Actions match, and which of them this page shows.
    matching: usize,
    paging: Paging,
    /// The reviews the time-travel form offers.
    known_reviews: Vec<Choice>,
    /// Every filter asked, for the export's link.
    export_query: String,
    /// The IATI export is configured: its link is offered.
    iati: bool,
}

/// The names of the fields of `/`'s form.
const INDEX_FIELDS: [&str; 7] = [
    "country",
    "track",
    "state",
    "flag",
    "as_of",
    "until_seq",
    "known_at",
];

/// The parameter of `/` that picks a page of the Action table.
const PAGE_PARAM: &[&str] = &["page"];

/// Rows of the Action table on one page of `/`.
pub const PAGE_ROWS: usize = 100;

/// Which page of the Action table is shown, and the links to its neighbours (every filter kept).
struct Paging {
    page: usize,
    pages: usize,
    first_row: usize,
    last_row: usize,
    previous: Option<String>,
    next: Option<String>,
    /// What is wrong with the `page` asked, if anything.
    error: Option<String>,
}

impl Paging {
    /// The page asked in `query` of `matching` rows; a page that does not read or is past the
    /// last shows the nearest page that exists, with the error.
    fn new(query: &std::collections::HashMap<String, String>, matching: usize) -> Paging {
        let pages = matching.div_ceil(PAGE_ROWS).max(1);
        let (page, error) = match query.get("page").map(|text| (text, text.parse::<usize>())) {
            None => (1, None),
            Some((_, Ok(page))) if (1..=pages).contains(&page) => (page, None),
            Some((_, Ok(page))) if page > pages => (
                pages,
                Some(format!(
                    "there is no page {page}: {matching} Actions fill {pages} page{}",
                    if pages == 1 { "" } else { "s" }
                )),
            ),
            Some((text, _)) => (
                1,
                Some(format!("page must be a whole number from 1, not {text:?}")),
            ),
        };
        let mut names: Vec<&str> = INDEX_FIELDS.to_vec();
        names.push("page");
        let link = |to: usize| {
            let mut asked = query.clone();
            asked.insert("page".into(), to.to_string());
            format!("/{}", super::form::kept_query(&asked, &names))
        };
        Paging {
            page,
            pages,
            first_row: ((page - 1) * PAGE_ROWS + 1).min(matching),
            last_row: (page * PAGE_ROWS).min(matching),
            previous: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
            error,
        }
    }

    /// The rows of `all` on this page.
    fn of<'a, T>(&self, all: &'a [T]) -> &'a [T] {
        let start = ((self.page - 1) * PAGE_ROWS).min(all.len());
        &all[start..(start + PAGE_ROWS).min(all.len())]
    }
}

pub async fn index(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    query: Query,
) -> Result<axum::response::Response, PageError> {
    use crate::api::actions::{ListFilter, LIST_PARAMS};
    use axum::response::IntoResponse;
    let query = asked(&query);
    let (filters, mut faults) = crate::api::filters_checked(&query);
    let (list_filter, list_faults) = ListFilter::checked(&query);
    faults.extend(list_faults);
    let form = Form::new(
        &query,
        &INDEX_FIELDS,
        &[FILTER_PARAMS, LIST_PARAMS, PAGE_PARAM],
        faults,
    );
    let mut status = form.status();
    let Form { fields, unknown } = form;
    let keep = time_travel_query(&query);
    let export_query = super::form::kept_query(&query, &INDEX_FIELDS);
    let known_reviews = review_choices(&app, &caller, &fields["until_seq"]).await?;
    let html = blocking(move || {
        let statuses = queries::statuses(
            &app.store,
            app.durable_seq(),
            &filters,
            &app.config.rules,
            |country| caller.sees(country),
        )?;
        let mut countries: Vec<String> = statuses
            .iter()
            .map(|s| s.view.country.to_string())
            .collect();
        countries.sort();
        countries.dedup();
        let shown: Vec<&ActionStatus> = statuses
            .iter()
            .filter(|status| {
                list_filter
                    .country
                    .as_ref()
                    .is_none_or(|country| *country == status.view.country)
                    && list_filter.matches(status)
            })
            .collect();
        let mut by_state = [0u32; 4];
        let mut by_country: std::collections::BTreeMap<String, u32> = Default::default();
        for status in &shown {
            let summary = &status.view.summary;
            for (slot, count) in by_state.iter_mut().zip([
                summary.in_progress,
                summary.achieved,
                summary.sustained,
                summary.regressed,
            ]) {
                *slot += count;
            }
            *by_country
                .entry(status.view.country.to_string())
                .or_default() += 1;
        }
        let state_labels = [
            OutcomeState::InProgress,
            OutcomeState::Achieved,
            OutcomeState::Sustained,
            OutcomeState::Regressed,
        ];
        let paging = Paging::new(&query, shown.len());
        if paging.error.is_some() {
            status = axum::http::StatusCode::BAD_REQUEST;
        }
        let rows = paging.of(&shown).iter().map(|status| row(status)).collect();
        let choices_of =
            |name: &str, options: Vec<(String, String)>| choices(&fields[name], options);
        let countries = choices_of(
            "country",
            countries.into_iter().map(|c| (c.clone(), c)).collect(),
        );
        let tracks = choices_of(
            "track",
            Track::all()
                .map(|track| (track.name().to_owned(), words::name(track.name())))
                .collect(),
        );
        let states = choices_of(
            "state",
            state_labels
                .iter()
                .map(|state| (state.as_str().to_owned(), words::state(*state).to_owned()))
                .collect(),
        );
        let flags = choices_of(
            "flag",
            FlagKind::ALL
                .iter()
                .map(|flag| (flag.as_str().to_owned(), words::flag(*flag).to_owned()))
                .collect(),
        );
        render(IndexPage {
            chrome,
            reference: words::date(queries::reference_date(&filters)),
            rows,
            fields,
            countries,
            tracks,
            states,
            flags,
            unknown,
            by_state: bars(
                state_labels
                    .iter()
                    .zip(by_state)
                    .map(|(state, count)| (words::state(*state).to_owned(), count))
                    .collect(),
            ),
            by_country: bars(by_country.into_iter().collect()),
            keep,
            matching: shown.len(),
            paging,
            known_reviews,
            export_query,
            iati: app.config.iati.is_some(),
        })
        .map(|html| (status, html))
    })
    .await?;
    Ok(html.into_response())
}

/// One Action in the list, in words.
fn row(status: &ActionStatus) -> Row {
    let view = &status.view;
    // Each kind once, with how many outcomes carry it.
    let mut counted: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for flag in &status.flags {
        *counted.entry(words::flag(flag.flag)).or_default() += 1;
    }
    Row {
        action_id: view.action_id.to_string(),
        country: view.country.to_string(),
        title: view
            .title
            .clone()
            .unwrap_or_else(|| "(not registered yet)".into()),
        outcomes: view.summary.outcomes,
        in_progress: view.summary.in_progress,
        achieved: view.summary.achieved,
        sustained: view.summary.sustained,
        regressed: view.summary.regressed,
        flags: counted
            .into_iter()
            .map(|(flag, count)| match count {
                1 => flag.to_owned(),
                n => format!("{flag} ×{n}"),
            })
            .collect(),
        last_report: words::short_date(view.last_event_on),
    }
}

/// One step of an outcome's track, as the ladder shows it.
struct Step {
    name: String,
    /// "now", "highest reached", "reached", "expected", or nothing.
    marks: Vec<&'static str>,
    class: &'static str,
    current: bool,
}

struct OutcomeRow {
    ladder: Vec<Step>,
    /// The current stage when it is an exit (stalled, withdrawn …).
    exit: Option<String>,
    title: String,
    outcome_id: String,
    track: String,
    stage: String,
    since: String,
    highest: String,
    state: &'static str,
    state_class: &'static str,
    expected: String,
    verification: &'static str,
    /// "substantial, medium confidence", or "not stated".
    contribution: String,
    contribution_note: Option<String>,
}

/// One event of the history, in words.
struct EventRow {
    seq: u64,
    event_id: String,
    /// Whether the caller's role may withdraw it (a link to the retraction form).
    retractable: bool,
    occurred_on: String,
    what: String,
    outcome: String,
    recorded_at: String,
    submitted_by: String,
    retracted: bool,
}

/// A dot of the timeline: where on the line (0–1000), and what it is.
struct Dot {
    x: u32,
    label: String,
    retracted: bool,
}

/// A flag in words, with the outcome it is about (named as the page names outcomes).
pub struct FlagRow {
    pub flag: &'static str,
    pub outcome: String,
    pub detail: String,
}

/// `flags` in words; `outcome` names each flag's outcome (`None`: an Action-level flag).
pub fn flag_rows(
    flags: &[crate::domain::fold::Flag],
    outcome: impl Fn(Option<&crate::domain::ids::OutcomeId>) -> String,
) -> Vec<FlagRow> {
    flags
        .iter()
        .map(|flag| FlagRow {
            flag: words::flag(flag.flag),
            outcome: outcome(flag.outcome_id.as_ref()),
            detail: flag.detail.clone(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "action.html")]
struct ActionPage {
    chrome: Chrome,
    action_id: String,
    fields: std::collections::BTreeMap<&'static str, Field>,
    unknown: Option<String>,
    /// The time-travel part of the query, kept in the link back to the list.
    keep: String,
    /// This point in time as the left side of a comparison with now.
    compare_query: String,
    /// The Action's drawing, rendered (and escaped) by its own templates.
    drawing: Drawing,
    /// The reviews the time-travel form offers.
    known_reviews: Vec<Choice>,
    /// What a form just recorded, in words.
    notice: Option<String>,
    /// The forms the caller may use on this Action: `form` parameter and heading.
    forms: Vec<(&'static str, &'static str)>,
}

/// The parameters a form's answer adds to the Action's page: the event recorded, and whether
/// it was recorded already.
const RECORDED_PARAMS: &[&str] = &["recorded", "duplicate"];

/// What the page draws from the Action's record alone, under the filters at the reference
/// date: the heading above the time-travel form, then everything below it, as one text. Kept in
/// `app.pages` like a view, LZ4-compressed, and served again while the record is byte-for-byte
/// the same.
struct Drawing {
    text: String,
    head_len: usize,
}

impl Drawing {
    fn new(head: String, body: &str) -> Drawing {
        let head_len = head.len();
        let mut text = head;
        text.push_str(body);
        Drawing { text, head_len }
    }

    fn head(&self) -> &str {
        &self.text[..self.head_len]
    }

    fn body(&self) -> &str {
        &self.text[self.head_len..]
    }

    fn pack(&self) -> bytes::Bytes {
        let mut plain = (self.head_len as u32).to_be_bytes().to_vec();
        plain.extend_from_slice(self.text.as_bytes());
        lz4_flex::block::compress_prepend_size(&plain).into()
    }

    fn unpack(packed: &[u8]) -> Result<Drawing, ApiError> {
        let broken = || ApiError::Internal("a kept Action page does not unpack".into());
        let mut plain = lz4_flex::block::decompress_size_prepended(packed).map_err(|_| broken())?;
        let head_len = plain.get(..4).ok_or_else(broken)?;
        let head_len = u32::from_be_bytes(head_len.try_into().expect("four bytes")) as usize;
        plain.drain(..4);
        let text = String::from_utf8(plain).map_err(|_| broken())?;
        match text.is_char_boundary(head_len) {
            true => Ok(Drawing { text, head_len }),
            false => Err(broken()),
        }
    }
}

#[derive(Template)]
#[template(path = "action_head.html")]
struct ActionHead<'a> {
    action_id: &'a str,
    title: &'a str,
    country: &'a str,
    event_count: u32,
    last_report: &'a str,
    reference: &'a str,
}

#[derive(Template)]
#[template(path = "action_body.html")]
struct ActionBody {
    action_id: String,
    outcomes: Vec<OutcomeRow>,
    flags: Vec<FlagRow>,
    history: Vec<EventRow>,
    timeline: Vec<Dot>,
    first_day: String,
    last_day: String,
}

pub async fn action(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    Path(id): Path<String>,
    query: Query,
) -> Result<axum::response::Response, PageError> {
    use axum::response::IntoResponse;
    let query = asked(&query);
    let (filters, faults) = crate::api::filters_checked(&query);
    let form = Form::new(
        &query,
        &TIME_TRAVEL_FIELDS,
        &[FILTER_PARAMS, RECORDED_PARAMS],
        faults,
    );
    let status = form.status();
    let Form { fields, unknown } = form;
    let keep = time_travel_query(&query);
    let recorded = query.get("recorded").cloned();
    let again = query.get("duplicate").is_some_and(|v| v == "true");
    let sided: std::collections::HashMap<String, String> = query
        .iter()
        .filter(|(name, _)| TIME_TRAVEL_FIELDS.contains(&name.as_str()))
        .map(|(name, value)| (format!("a_{name}"), value.clone()))
        .collect();
    let compare_query = super::form::kept_query(&sided, crate::api::actions::COMPARE_PARAMS);
    let action_id =
        ActionId::parse(&id).map_err(|_| ApiError::NotFound(format!("no Action {id:?}")))?;
    let reference = queries::reference_date(&filters);
    // The record from memory or one sled page, on this thread (as a view is read).
    let bytes = app
        .store
        .record_raw(&action_id)
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::NotFound(format!("no Action {action_id}")))?;
    let pages = pages_of(&app, caller.role);
    let kept = pages.get(&action_id, &filters, reference, &bytes, |country| {
        caller.require_country(country)
    })?;
    let drawing = match kept {
        Some(packed) => Drawing::unpack(&packed)?,
        None => {
            let record = crate::store::decode_record(&bytes).map_err(ApiError::from)?;
            caller.require_country(&record.country)?;
            // An Action of a few events is drawn on this thread (its events are a few reads
            // of cached log pages), a long one on the blocking pool.
            let inline = record.events.len() <= INLINE_EVENTS;
            let country = record.country.clone();
            let role = caller.role;
            let drawn = {
                let app = app.clone();
                move || draw(&app, &record, &filters, role)
            };
            let (drawing, durable) = match inline {
                true => drawn()?,
                false => blocking(drawn).await?,
            };
            // Kept only when all it shows was durable (as a view is): a record holding more
            // than is durable now is drawn without it, and drawn again later.
            if durable {
                let packed = drawing.pack();
                pages.put(&action_id, filters, reference, &bytes, country, packed);
            }
            drawing
        }
    };
    let known_reviews = review_choices(&app, &caller, &fields["until_seq"]).await?;
    // What a form just recorded (its answer sends the browser here).
    let notice = match recorded {
        Some(id) => super::submit::event_words(&app, &action_id, &id)?.map(|what| match again {
            true => {
                format!("Recorded already: {what}. Sending the form again did not record it twice.")
            }
            false => format!("Recorded: {what}."),
        }),
        None => None,
    };
    let forms = super::submit::offered(caller.role)
        .into_iter()
        .filter(|kind| {
            *kind != super::submit::Kind::Register && *kind != super::submit::Kind::Retract
        })
        .map(|kind| (kind.param(), kind.heading()))
        .collect();
    let html = render(ActionPage {
        notice,
        forms,
        known_reviews,
        chrome,
        action_id: action_id.to_string(),
        fields,
        unknown,
        keep,
        compare_query,
        drawing,
    })?;
    Ok((status, html).into_response())
}

/// The kept drawings of `role`'s pages.
fn pages_of(app: &App, role: crate::domain::rights::Role) -> &crate::api::ViewCache {
    use crate::domain::rights::Role;
    &app.pages[match role {
        Role::FieldOffice => 0,
        Role::Evaluator => 1,
        Role::Admin => 2,
    }]
}

/// An Action of at most this many events is drawn without handing it to the blocking pool.
const INLINE_EVENTS: usize = 64;

/// The Action's drawing under `filters`, and whether everything it shows was durable.
fn draw(
    app: &App,
    record: &crate::domain::fold::ActionRecord,
    filters: &crate::domain::fold::Filters,
    role: crate::domain::rights::Role,
) -> Result<(Drawing, bool), ApiError> {
    let durable = app.durable_seq();
    let all_durable = filters.within(record, durable) == *filters;
    let status: ActionStatus = queries::status_of(record, durable, filters, &app.config.rules)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no Action {} (at that point in time)",
                record.action_id
            ))
        })?;
    let events = queries::history_of(&app.store, durable, record, filters)?;
    let view = &status.view;
    let contributions = crate::domain::contribution::contributions(&events);
    let outcomes = view
        .outcomes
        .iter()
        .map(|outcome| outcome_row(outcome, contributions.get(outcome.outcome_id.as_str())))
        .collect();
    let flags = flag_rows(&status.flags, |outcome| {
        outcome.map_or(String::new(), ToString::to_string)
    });
    let text = |event: &serde_json::Value, key: &str| {
        event[key].as_str().map(str::to_owned).unwrap_or_default()
    };
    let history: Vec<EventRow> = events
        .iter()
        .map(|event| EventRow {
            seq: event["seq"].as_u64().unwrap_or(0),
            event_id: text(event, "event_id"),
            retractable: !event["retracted"].as_bool().unwrap_or(false)
                && role.may_retract(&text(event, "type")),
            occurred_on: event["occurred_on"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .map_or_else(|| text(event, "occurred_on"), words::date),
            what: words::event_type(&text(event, "type")),
            outcome: text(event, "outcome_id"),
            recorded_at: text(event, "recorded_at"),
            submitted_by: event["submitted_by"]
                .as_str()
                .map_or("—".into(), str::to_owned),
            retracted: event["retracted"].as_bool().unwrap_or(false),
        })
        .collect();
    let days: Vec<chrono::NaiveDate> = events
        .iter()
        .filter_map(|event| event["occurred_on"].as_str()?.parse().ok())
        .collect();
    let (first, last) = (days.iter().min().copied(), days.iter().max().copied());
    let span = match (first, last) {
        (Some(first), Some(last)) => (last - first).num_days().max(1),
        _ => 1,
    };
    let timeline = events
        .iter()
        .zip(&history)
        .filter_map(|(event, row)| {
            let day: chrono::NaiveDate = event["occurred_on"].as_str()?.parse().ok()?;
            let x = ((day - first?).num_days() * 1000 / span) as u32;
            Some(Dot {
                x,
                label: format!("{}: {}", row.occurred_on, row.what),
                retracted: row.retracted,
            })
        })
        .collect();
    let render_err = |e: askama::Error| ApiError::Internal(format!("render a page: {e}"));
    let head = ActionHead {
        action_id: view.action_id.as_str(),
        title: view.title.as_deref().unwrap_or("(not registered yet)"),
        country: view.country.as_str(),
        event_count: view.event_count,
        last_report: &words::date(view.last_event_on),
        reference: &words::date(queries::reference_date(filters)),
    }
    .render()
    .map_err(render_err)?;
    let body = ActionBody {
        action_id: view.action_id.to_string(),
        outcomes,
        flags,
        history,
        timeline,
        first_day: first.map_or(String::new(), words::date),
        last_day: last.map_or(String::new(), words::date),
    }
    .render()
    .map_err(render_err)?;
    Ok((Drawing::new(head, &body), all_durable))
}

/// An outcome in words, with its track drawn as a ladder of its forward stages.
fn outcome_row(
    outcome: &crate::domain::fold::OutcomeView,
    contribution: Option<&crate::domain::contribution::Contribution>,
) -> OutcomeRow {
    let track = Track::parse(outcome.track);
    let current = track.and_then(|track| track.stage(outcome.stage));
    let highest = outcome
        .highest_stage
        .and_then(|name| track.and_then(|track| track.stage(name)));
    let expected = outcome
        .expected
        .as_ref()
        .and_then(|expected| track.and_then(|track| track.stage(expected.stage)));
    let ladder = track
        .into_iter()
        .flat_map(|track| track.stages())
        .filter(|stage| stage.rank().is_some())
        .map(|stage| {
            let mut marks = Vec::new();
            if Some(stage) == current {
                marks.push("now");
            }
            if Some(stage) == highest && Some(stage) != current {
                marks.push("highest reached");
            }
            let reached = highest
                .and_then(|h| h.rank())
                .is_some_and(|h| stage.rank().is_some_and(|rank| rank <= h));
            if reached && marks.is_empty() {
                marks.push("reached");
            }
            if Some(stage) == expected {
                marks.push("expected");
            }
            Step {
                current: Some(stage) == current,
                name: words::name(stage.name()),
                class: match (Some(stage) == current, reached) {
                    (true, _) => "now",
                    (false, true) => "reached",
                    (false, false) => "ahead",
                },
                marks,
            }
        })
        .collect();
    OutcomeRow {
        ladder,
        exit: current
            .filter(|stage| stage.is_exit())
            .map(|stage| words::name(stage.name())),
        title: outcome.title.clone(),
        outcome_id: outcome.outcome_id.to_string(),
        track: words::name(outcome.track),
        stage: words::name(outcome.stage),
        since: words::date(outcome.stage_since),
        highest: outcome.highest_stage.map_or("—".into(), words::name),
        state: words::state(outcome.state),
        state_class: outcome.state.as_str(),
        expected: outcome
            .expected
            .as_ref()
            .map_or("—".into(), words::expected),
        verification: words::verification(outcome.verification),
        contribution: contribution.map_or("not stated".into(), words::contribution),
        contribution_note: contribution.and_then(|c| c.note.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::Drawing;

    #[test]
    fn a_kept_drawing_unpacks_to_the_same_head_and_body() {
        let drawing = Drawing::new("<h1>Réseau</h1>".into(), &"<p>body · ✓</p>".repeat(200));
        let again = Drawing::unpack(&drawing.pack()).unwrap();
        assert_eq!(
            (again.head(), again.body()),
            (drawing.head(), drawing.body())
        );
        assert!(
            drawing.pack().len() < drawing.text.len() / 4,
            "it is kept compressed"
        );
        assert!(Drawing::unpack(b"\x05\0\0\0broken").is_err());
    }
}
