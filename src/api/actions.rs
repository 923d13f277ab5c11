//! The Action list, one Action's view and its history, all with time travel.

use super::{blocking, filters, json_body, only_params, ApiError, Caller, Query, FILTER_PARAMS};
use crate::app::App;
use crate::domain::fold::{ActionRecord, ActionStatus, FlagKind, OutcomeState};
use crate::domain::ids::{ActionId, Country};
use crate::domain::tracks::Track;
use crate::queries;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionListItem<'a> {
    pub action_id: &'a ActionId,
    pub country: &'a Country,
    pub title: &'a Option<String>,
    pub registered: bool,
    pub closed: bool,
    pub last_event_on: chrono::NaiveDate,
    pub summary: &'a crate::domain::fold::Summary,
    pub flag_count: usize,
}

impl<'a> From<&'a ActionStatus> for ActionListItem<'a> {
    fn from(status: &'a ActionStatus) -> ActionListItem<'a> {
        let view = &status.view;
        ActionListItem {
            action_id: &view.action_id,
            country: &view.country,
            title: &view.title,
            registered: view.registered,
            closed: view.closed,
            last_event_on: view.last_event_on,
            summary: &view.summary,
            flag_count: status.flags.len(),
        }
    }
}

/// The list filters: an Action matches when one of its outcomes or flags does.
#[derive(Default)]
pub struct ListFilter {
    pub country: Option<Country>,
    pub track: Option<Track>,
    pub state: Option<OutcomeState>,
    pub flag: Option<FlagKind>,
}

/// The list's own filters, beside those of §3.1.
pub const LIST_PARAMS: &[&str] = &["country", "track", "state", "flag"];

impl ListFilter {
    pub fn parse(query: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
        let (filter, faults) = ListFilter::checked(query);
        match faults.into_iter().next() {
            Some((_, message)) => Err(ApiError::BadQuery(message)),
            None => Ok(filter),
        }
    }

    /// The filters that read, and for each that does not, its name and what is wrong.
    pub fn checked(query: &HashMap<String, String>) -> (ListFilter, Vec<(&'static str, String)>) {
        let mut faults = Vec::new();
        let mut read = |name: &'static str, parse: &dyn Fn(&str) -> bool| -> Option<String> {
            let text = query.get(name)?;
            if text.is_empty() {
                return None; // A form's "any".
            }
            if parse(text) {
                Some(text.clone())
            } else {
                faults.push((name, format!("unknown {name} {text:?}")));
                None
            }
        };
        let country = read("country", &|c| Country::parse_assigned(c).is_ok());
        let track = read("track", &|t| Track::parse(t).is_some());
        let state = read("state", &|s| OutcomeState::parse(s).is_some());
        let flag = read("flag", &|f| FlagKind::parse(f).is_some());
        let filter = ListFilter {
            country: country.and_then(|c| Country::parse_assigned(&c).ok()),
            track: track.and_then(|t| Track::parse(&t)),
            state: state.and_then(|s| OutcomeState::parse(&s)),
            flag: flag.and_then(|f| FlagKind::parse(&f)),
        };
        (filter, faults)
    }

    pub fn matches(&self, status: &ActionStatus) -> bool {
        let outcomes = &status.view.outcomes;
        self.track
            .is_none_or(|track| outcomes.iter().any(|o| o.track == track.name()))
            && self
                .state
                .is_none_or(|state| outcomes.iter().any(|o| o.state == state))
            && self
                .flag
                .is_none_or(|flag| status.flags.iter().any(|f| f.flag == flag))
    }
}

#[utoipa::path(get, path = "/v1/actions", operation_id = "list_actions", tag = "views",
    params(crate::api::openapi::TimeTravel, crate::api::openapi::ListFilters),
    responses((status = 200, description = "The Actions in scope and their summaries", body = crate::api::openapi::ActionList), crate::api::openapi::ReadErrors))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    only_params(&query, &[FILTER_PARAMS, LIST_PARAMS])?;
    let filters = filters(&query)?;
    let list_filter = ListFilter::parse(&query)?;
    blocking(move || {
        let keep = |country: &Country| {
            caller.sees(country) && list_filter.country.as_ref().is_none_or(|c| c == country)
        };
        let statuses = queries::statuses(
            &app.store,
            app.durable_seq(),
            &filters,
            &app.config.rules,
            keep,
        )?;
        let actions: Vec<ActionListItem> = statuses
            .iter()
            .filter(|s| list_filter.matches(s))
            .map(ActionListItem::from)
            .collect();
        Ok(Json(json!({"actions": actions})))
    })
    .await
}

fn action_id(text: &str) -> Result<ActionId, ApiError> {
    ActionId::parse(text).map_err(|_| ApiError::NotFound(format!("no Action {text:?}")))
}

/// The Action's record, if it exists and the caller may read its country.
fn readable_record(
    app: &App,
    caller: &Caller,
    action_id: &ActionId,
) -> Result<ActionRecord, ApiError> {
    readable(caller, &record_bytes(app, action_id)?)
}

/// The Action's record as stored (from memory or one sled page), or `404`.
fn record_bytes(app: &App, action_id: &ActionId) -> Result<sled::IVec, ApiError> {
    app.store
        .record_raw(action_id)?
        .ok_or_else(|| ApiError::NotFound(format!("no Action {action_id}")))
}

/// A stored record, decoded, if the caller may read its country.
fn readable(caller: &Caller, bytes: &[u8]) -> Result<ActionRecord, ApiError> {
    let record = crate::store::decode_record(bytes)?;
    caller.require_country(&record.country)?;
    Ok(record)
}

#[utoipa::path(get, path = "/v1/actions/{id}", operation_id = "get_action", tag = "views",
    params(("id" = String, Path, description = "The Action's id"), crate::api::openapi::TimeTravel),
    responses((status = 200, description = "The Action's status: its view, flags and reference date", body = crate::domain::fold::ActionStatus), crate::api::openapi::ReadErrors))]
pub async fn view(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    only_params(&query, &[FILTER_PARAMS])?;
    let filters = filters(&query)?;
    let action_id = action_id(&id)?;
    let reference = queries::reference_date(&filters);
    // One record, from memory or one sled page: cheaper on this thread than handed to the
    // blocking pool (the scans below are handed over). A view rendered from these very bytes
    // before is served as it was.
    let bytes = record_bytes(&app, &action_id)?;
    let cached = app
        .views
        .get(&action_id, &filters, reference, &bytes, |country| {
            caller.require_country(country)
        })?;
    if let Some(body) = cached {
        return Ok(json_body(body));
    }
    let record = readable(&caller, &bytes)?;
    // A hit above was rendered from these bytes when all they hold was durable already; a
    // record that holds more than is durable now is drawn without it, and not kept.
    let within = filters.within(&record, app.durable_seq());
    let durable = within == filters;
    let view = record.view(&within, &app.config.rules);
    let view = view.ok_or_else(|| {
        ApiError::NotFound(format!(
            "Action {action_id} has no event under these filters"
        ))
    })?;
    let status = ActionStatus::new(view, &app.config.rules, reference);
    let body =
        Bytes::from(serde_json::to_vec(&status).map_err(|e| ApiError::Internal(e.to_string()))?);
    if !durable {
        return Ok(json_body(body));
    }
    app.views.put(
        &action_id,
        filters,
        reference,
        &bytes,
        record.country,
        body.clone(),
    );
    Ok(json_body(body))
}

#[utoipa::path(get, path = "/v1/actions/{id}/events", operation_id = "get_action_events", tag = "views",
    params(("id" = String, Path, description = "The Action's id"), crate::api::openapi::TimeTravel),
    responses((status = 200, description = "The Action's events in seq order, each marked retracted as known under the filters", body = crate::api::openapi::History), crate::api::openapi::ReadErrors))]
pub async fn history(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    only_params(&query, &[FILTER_PARAMS])?;
    let filters = filters(&query)?;
    let action_id = action_id(&id)?;
    blocking(move || {
        let record = readable_record(&app, &caller, &action_id)?;
        let events = queries::history_of(&app.store, app.durable_seq(), &record, &filters)?;
        Ok(Json(json!({"action_id": action_id, "events": events})))
    })
    .await
}

/// The parameters of `compare`: the §3.1 filters of each side, prefixed `a_` and `b_`.
pub const COMPARE_PARAMS: &[&str] = &[
    "a_as_of",
    "a_until_seq",
    "a_known_at",
    "b_as_of",
    "b_until_seq",
    "b_known_at",
];

/// One side's filters from a `compare` query (`prefix` `a_` or `b_`), and what did not read,
/// named by the prefixed parameter.
fn side_filters(
    query: &HashMap<String, String>,
    prefix: &str,
) -> (crate::domain::fold::Filters, Vec<(&'static str, String)>) {
    let side: HashMap<String, String> = query
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix(prefix)?.to_owned(), value.clone())))
        .collect();
    let (filters, faults) = super::filters_checked(&side);
    let faults = faults
        .into_iter()
        .map(|(name, message)| {
            let full = COMPARE_PARAMS
                .iter()
                .find(|known| known.strip_prefix(prefix) == Some(name))
                .copied()
                .unwrap_or(name);
            (full, format!("{prefix}{message}"))
        })
        .collect();
    (filters, faults)
}

/// Both sides' filters of a `compare` query, and what did not read on either.
pub fn compare_filters(
    query: &HashMap<String, String>,
) -> (
    (crate::domain::fold::Filters, crate::domain::fold::Filters),
    Vec<(&'static str, String)>,
) {
    let (a, mut faults) = side_filters(query, "a_");
    let (b, b_faults) = side_filters(query, "b_");
    faults.extend(b_faults);
    ((a, b), faults)
}

#[utoipa::path(get, path = "/v1/actions/{id}/compare", operation_id = "compare_action", tag = "views",
    params(("id" = String, Path, description = "The Action's id"), crate::api::openapi::CompareSides),
    responses((status = 200, description = "What differs between the two sides", body = crate::domain::compare::Comparison), crate::api::openapi::ReadErrors))]
pub async fn compare(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Query,
) -> Result<Json<crate::domain::compare::Comparison>, ApiError> {
    only_params(&query, &[COMPARE_PARAMS])?;
    let ((a, b), faults) = compare_filters(&query);
    if let Some((_, message)) = faults.into_iter().next() {
        return Err(ApiError::BadQuery(message));
    }
    let action_id = action_id(&id)?;
    // One record (from memory or one sled page) folded twice: cheaper on this thread than
    // handed to the blocking pool, as a view is.
    let compared = compared(&app, &caller, &action_id, (&a, &b))?;
    Ok(Json(compared.comparison))
}

/// The Action under two sets of filters, if it has an event on either side and the caller may
/// read its country (the API's `compare` and the compare page).
pub fn compared(
    app: &App,
    caller: &Caller,
    action_id: &ActionId,
    sides: (&crate::domain::fold::Filters, &crate::domain::fold::Filters),
) -> Result<queries::Compared, ApiError> {
    let compared = queries::compare(
        &app.store,
        app.durable_seq(),
        action_id,
        sides,
        &app.config.rules,
    )?
    .ok_or_else(|| ApiError::NotFound(format!("no Action {action_id} at either point in time")))?;
    caller.require_country(&compared.country)?;
    Ok(compared)
}
