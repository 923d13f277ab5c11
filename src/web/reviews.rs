//! `/reviews` and `/reviews/{id}` (CONTRACT.md §4.3, §5.1): the reviews, newest first, with a
//! form to run one now; one report as a page, with what changed since the previous review of
//! the same scope. Evaluators and admins.

use super::form::{asked, check_csrf, Field, Form, TIME_TRAVEL_FIELDS};
use super::{render, words, Chrome, PageCaller, PageError};
use crate::api::{blocking, ApiError, Query, FILTER_PARAMS};
use crate::app::App;
use crate::domain::fold::{Filters, FlagKind};
use crate::domain::ids::Country;
use crate::domain::review::{changes, Finding, Highlight, ReviewReport, Totals};
use crate::queries;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Findings and highlights shown on a report's page at most; the Markdown and JSON have all.
const ITEMS_SHOWN: usize = 500;

/// The columns of a table of totals, in words, in the order of [`Totals::named`].
const TOTALS_HEADINGS: [&str; 9] = [
    "Actions",
    "Outcomes",
    "In progress",
    "Achieved",
    "Sustained",
    "Going backwards",
    "Verified",
    "Disputed",
    "Reported, not verified",
];

fn cells(t: &Totals) -> [u32; 9] {
    t.named().map(|(_, count)| count)
}

struct TotalsRow {
    name: String,
    cells: [u32; 9],
}

fn scope(country: Option<&Country>) -> String {
    country.map_or("all countries".to_owned(), ToString::to_string)
}

/// "run by hand", or the slot of a scheduled review.
fn how(report: &ReviewReport) -> String {
    report
        .schedule_slot
        .as_ref()
        .map_or("run by hand".into(), |slot| format!("scheduled for {slot}"))
}

/// What names a review, in words: on the list and on its own page.
struct Head {
    review_id: String,
    /// The id as it goes in a link.
    link_id: String,
    as_of: String,
    until_seq: u64,
    scope: String,
    how: String,
    /// The outcomes the review read, as the export's query: its date, log position and scope.
    export_query: String,
}

fn head(report: &ReviewReport) -> Head {
    Head {
        review_id: report.review_id.clone(),
        link_id: words::url_encode(&report.review_id),
        as_of: words::date(report.as_of),
        until_seq: report.until_seq,
        scope: scope(report.country.as_ref()),
        how: how(report),
        export_query: format!(
            "?as_of={}&until_seq={}{}",
            report.as_of,
            report.until_seq,
            report
                .country
                .as_ref()
                .map_or(String::new(), |country| format!("&country={country}"))
        ),
    }
}

struct ListRow {
    head: Head,
    cells: [u32; 9],
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ListPage {
    chrome: Chrome,
    headings: [&'static str; 9],
    rows: Vec<ListRow>,
    fields: BTreeMap<&'static str, Field>,
    unknown: Option<String>,
    run: BTreeMap<&'static str, Field>,
    /// The reviews the time-travel form offers.
    known_reviews: Vec<super::form::Choice>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    query: Query,
) -> Result<Response, PageError> {
    caller.require_reviewer()?;
    let query = asked(&query);
    let (filters, faults) = crate::api::filters_checked(&query);
    let form = Form::new(&query, &TIME_TRAVEL_FIELDS, &[FILTER_PARAMS], faults);
    let status = form.status();
    let html = list_page(
        app,
        &caller,
        chrome,
        form,
        filters,
        run_fields(&RunReview::default()),
    )
    .await?;
    Ok((status, html).into_response())
}

async fn list_page(
    app: Arc<App>,
    caller: &crate::api::Caller,
    chrome: Chrome,
    form: Form,
    filters: Filters,
    run: BTreeMap<&'static str, Field>,
) -> Result<Html<String>, ApiError> {
    let known_reviews =
        super::known_reviews::review_choices(&app, caller, &form.fields["until_seq"]).await?;
    let reviews = blocking(move || {
        Ok(queries::reviews_known(
            &app.store,
            app.durable_seq(),
            &filters,
        )?)
    })
    .await?;
    let rows = reviews
        .into_iter()
        .map(|report| ListRow {
            head: head(&report),
            cells: cells(&report.totals),
        })
        .collect();
    render(ListPage {
        known_reviews,
        chrome,
        headings: TOTALS_HEADINGS,
        rows,
        fields: form.fields,
        unknown: form.unknown,
        run,
    })
}

/// The form that runs a review now.
#[derive(Deserialize, Default)]
pub struct RunReview {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    country: String,
}

fn run_fields(form: &RunReview) -> BTreeMap<&'static str, Field> {
    [("as_of", &form.as_of), ("country", &form.country)]
        .into_iter()
        .map(|(name, value)| {
            let value = value.trim().to_owned();
            (name, Field { value, error: None })
        })
        .collect()
}

/// `POST /reviews`: runs a review and shows it, or the list again with each error beside its
/// field (`400`).
pub async fn run(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    axum::Form(form): axum::Form<RunReview>,
) -> Result<Response, PageError> {
    check_csrf(&form.csrf, &chrome.csrf)?;
    caller.require_reviewer()?;
    let mut fields = run_fields(&form);
    // Typed in a form: trimmed, and a country code in capitals ("th" is TH).
    let (as_of, country) = (form.as_of.trim(), form.country.trim().to_ascii_uppercase());
    let given = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let (as_of, country, faults) =
        crate::api::reviews::review_scope(given(as_of).as_deref(), given(&country).as_deref());
    for (name, message) in faults {
        if let Some(field) = fields.get_mut(name) {
            field.error = Some(message);
        }
    }
    if fields.values().any(|field| field.error.is_some()) {
        let form = Form::new(&Default::default(), &TIME_TRAVEL_FIELDS, &[], Vec::new());
        let html = list_page(app, &caller, chrome, form, Filters::default(), fields).await?;
        return Ok((StatusCode::BAD_REQUEST, html).into_response());
    }
    let report = app
        .run_review(as_of, country, None)
        .await
        .map_err(ApiError::from)?;
    let to = format!("/reviews/{}", words::url_encode(&report.review_id));
    Ok(Redirect::to(&to).into_response())
}

struct FindingRow {
    action_id: String,
    action_title: String,
    outcome: String,
    flag: String,
    detail: String,
}

fn finding_row(finding: &Finding) -> FindingRow {
    FindingRow {
        action_id: finding.action_id.to_string(),
        action_title: finding.action_title.clone().unwrap_or_default(),
        outcome: finding
            .outcome_title
            .clone()
            .or_else(|| finding.outcome_id.as_ref().map(ToString::to_string))
            .unwrap_or_default(),
        flag: FlagKind::parse(&finding.flag).map_or_else(
            || words::name(&finding.flag),
            |flag| words::flag(flag).to_owned(),
        ),
        detail: finding.detail.clone(),
    }
}

struct HighlightRow {
    action_id: String,
    action_title: String,
    outcome: String,
    track: String,
    stage: String,
    state: &'static str,
    since: String,
}

fn highlight_row(highlight: &Highlight) -> HighlightRow {
    HighlightRow {
        action_id: highlight.action_id.to_string(),
        action_title: highlight.action_title.clone().unwrap_or_default(),
        outcome: highlight.outcome_title.clone(),
        track: words::name(&highlight.track),
        stage: words::name(&highlight.stage),
        state: words::state(highlight.state),
        since: words::date(highlight.stage_since),
    }
}

struct TotalChange {
    name: &'static str,
    before: String,
    now: u32,
    moved: bool,
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    chrome: Chrome,
    head: Head,
    headings: [&'static str; 9],
    totals: [u32; 9],
    by_country: Vec<TotalsRow>,
    by_track: Vec<TotalsRow>,
    finding_count: usize,
    findings: Vec<FindingRow>,
    highlight_count: usize,
    highlights: Vec<HighlightRow>,
    /// The previous review's id, and as it goes in a link.
    previous: Option<(String, String)>,
    total_changes: Vec<TotalChange>,
    findings_added: Vec<FindingRow>,
    findings_resolved: Vec<FindingRow>,
    highlights_added: Vec<HighlightRow>,
    highlights_removed: Vec<HighlightRow>,
    shown: usize,
    /// The IATI export is configured: its link is offered.
    iati: bool,
}

pub async fn one(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    Path(id): Path<String>,
    query: Query,
) -> Result<Response, PageError> {
    caller.require_reviewer()?;
    crate::api::only_params(&query, &[])?;
    let review_id = id.clone();
    let html = blocking(move || {
        let (report, previous) =
            queries::review_and_previous(&app.store, app.durable_seq(), &review_id)?
                .ok_or_else(|| ApiError::NotFound(format!("no review {review_id:?}")))?;
        let iati = app.config.iati.is_some();
        render(review_page(chrome, &report, previous.as_ref(), iati))
    })
    .await?;
    Ok(html.into_response())
}

fn review_page(
    chrome: Chrome,
    report: &ReviewReport,
    previous: Option<&ReviewReport>,
    iati: bool,
) -> ReviewPage {
    let changed = changes(previous, report);
    let now = cells(&report.totals);
    let before = previous.map(|p| cells(&p.totals));
    let total_changes = TOTALS_HEADINGS
        .iter()
        .enumerate()
        .map(|(i, name)| TotalChange {
            name,
            before: before.map_or("–".into(), |b| b[i].to_string()),
            now: now[i],
            moved: before.is_some_and(|b| b[i] != now[i]),
        })
        .collect();
    let table = |totals: &BTreeMap<String, Totals>, name: fn(&str) -> String| {
        totals
            .iter()
            .map(|(key, t)| TotalsRow {
                name: name(key),
                cells: cells(t),
            })
            .collect()
    };
    let findings = |items: &[Finding]| items.iter().take(ITEMS_SHOWN).map(finding_row).collect();
    let highlights =
        |items: &[Highlight]| items.iter().take(ITEMS_SHOWN).map(highlight_row).collect();
    ReviewPage {
        chrome,
        head: head(report),
        headings: TOTALS_HEADINGS,
        totals: now,
        by_country: table(&report.by_country, str::to_owned),
        by_track: table(&report.by_track, words::name),
        finding_count: report.findings.len(),
        findings: findings(&report.findings),
        highlight_count: report.highlights.len(),
        highlights: highlights(&report.highlights),
        previous: changed
            .previous_review_id
            .as_ref()
            .map(|id| (id.clone(), words::url_encode(id))),
        total_changes,
        findings_added: findings(&changed.findings.added),
        findings_resolved: findings(&changed.findings.resolved),
        highlights_added: highlights(&changed.highlights.added),
        highlights_removed: highlights(&changed.highlights.removed),
        shown: ITEMS_SHOWN,
        iati,
    }
}
