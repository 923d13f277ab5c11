//! `/` and `/actions/{id}`: the Actions in scope, and one Action's outcomes and flags.

use super::{render, words, Chrome, PageCaller};
use crate::api::{blocking, filters, only_params, ApiError, Query, FILTER_PARAMS};
use crate::app::App;
use crate::domain::fold::ActionStatus;
use crate::domain::ids::ActionId;
use crate::queries;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Html;
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

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    chrome: Chrome,
    reference: String,
    rows: Vec<Row>,
}

pub async fn index(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    query: Query,
) -> Result<Html<String>, ApiError> {
    only_params(&query, &[FILTER_PARAMS])?;
    let filters = filters(&query)?;
    blocking(move || {
        let statuses = queries::statuses(
            &app.store,
            app.durable_seq(),
            &filters,
            &app.config.rules,
            |country| caller.sees(country),
        )?;
        let rows = statuses
            .iter()
            .map(|status| {
                let view = &status.view;
                // Each kind once, with how many outcomes carry it.
                let mut counted: std::collections::BTreeMap<&'static str, usize> =
                    std::collections::BTreeMap::new();
                for flag in &status.flags {
                    *counted.entry(words::flag(flag.flag)).or_default() += 1;
                }
                let flags = counted
                    .into_iter()
                    .map(|(flag, count)| match count {
                        1 => flag.to_owned(),
                        n => format!("{flag} ×{n}"),
                    })
                    .collect();
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
                    flags,
                    last_report: words::date(view.last_event_on),
                }
            })
            .collect();
        render(IndexPage {
            chrome,
            reference: words::date(queries::reference_date(&filters)),
            rows,
        })
    })
    .await
}

struct OutcomeRow {
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
}

struct FlagRow {
    flag: &'static str,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "action.html")]
struct ActionPage {
    chrome: Chrome,
    action_id: String,
    title: String,
    country: String,
    event_count: u32,
    last_report: String,
    outcomes: Vec<OutcomeRow>,
    flags: Vec<FlagRow>,
}

pub async fn action(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    Path(id): Path<String>,
    query: Query,
) -> Result<Html<String>, ApiError> {
    only_params(&query, &[FILTER_PARAMS])?;
    let filters = filters(&query)?;
    let action_id =
        ActionId::parse(&id).map_err(|_| ApiError::NotFound(format!("no Action {id:?}")))?;
    blocking(move || {
        let status: ActionStatus = queries::status(
            &app.store,
            app.durable_seq(),
            &action_id,
            &filters,
            &app.config.rules,
        )?
        .ok_or_else(|| ApiError::NotFound(format!("no Action {action_id}")))?;
        caller.require_country(&status.view.country)?;
        let view = &status.view;
        let outcomes = view
            .outcomes
            .iter()
            .map(|outcome| OutcomeRow {
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
            })
            .collect();
        let flags = status
            .flags
            .iter()
            .map(|flag| FlagRow {
                flag: words::flag(flag.flag),
                outcome: flag
                    .outcome_id
                    .as_ref()
                    .map_or(String::new(), ToString::to_string),
                detail: flag.detail.clone(),
            })
            .collect();
        render(ActionPage {
            chrome,
            action_id: view.action_id.to_string(),
            title: view
                .title
                .clone()
                .unwrap_or_else(|| "(not registered yet)".into()),
            country: view.country.to_string(),
            event_count: view.event_count,
            last_report: words::date(view.last_event_on),
            outcomes,
            flags,
        })
    })
    .await
}
