//! The dashboard: plain HTML pages over the same reads as the API, no script needed.

use super::{blocking, filters, only_params, ApiError, Caller, Query, FILTER_PARAMS};
use crate::app::App;
use crate::domain::fold::ActionStatus;
use crate::domain::ids::ActionId;
use crate::queries;
use axum::extract::{Path, State};
use axum::response::Html;
use std::fmt::Write;
use std::sync::Arc;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}\
td,th{border-bottom:1px solid #ddd;padding:.35rem .6rem;text-align:left;vertical-align:top}th{background:#f3f3f3}\
.flag{background:#fde2e1;border-radius:3px;padding:0 .3rem;margin-right:.2rem;font-size:.85em}\
.achieved,.sustained{color:#1a7f37}.regressed{color:#b42318}.in_progress{color:#7a5b00}small{color:#666}";

/// The pages' stylesheet, served by the service (the Content-Security-Policy allows no inline
/// style and no other origin).
pub async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLE,
    )
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><link rel=\"stylesheet\" href=\"/style.css\"></head><body>{body}</body></html>",
        escape(title)
    ))
}

pub async fn index(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
) -> Result<Html<String>, ApiError> {
    only_params(&query, &[FILTER_PARAMS])?;
    let filters = filters(&query)?;
    blocking(move || {
        let statuses = queries::statuses(&app.store, app.durable_seq(), &filters, &app.config.rules, |country| caller.sees(country))?;
        let mut body = String::from("<h1>impact: longer-term results of Actions</h1>");
        let _ = write!(
            body,
            "<p><small>{} Actions · reference date {} · log position {} · <a href=\"/v1/actions\">JSON</a> · <a href=\"/metrics\">metrics</a></small></p>",
            statuses.len(),
            queries::reference_date(&filters),
            app.writer.position().last_seq
        );
        body.push_str("<table><tr><th>Action</th><th>Country</th><th>Title</th><th>Outcomes</th><th>In progress</th><th>Achieved</th><th>Sustained</th><th>Regressed</th><th>Flags</th><th>Last report</th></tr>");
        for status in &statuses {
            let view = &status.view;
            let flags: String = status.flags.iter().map(|flag| format!("<span class=\"flag\">{}</span>", flag.flag.as_str())).collect();
            let _ = write!(
                body,
                "<tr><td><a href=\"/actions/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{flags}</td><td>{}</td></tr>",
                view.country,
                escape(view.title.as_deref().unwrap_or("(not registered)")),
                view.summary.outcomes,
                view.summary.in_progress,
                view.summary.achieved,
                view.summary.sustained,
                view.summary.regressed,
                view.last_event_on,
                id = view.action_id,
            );
        }
        body.push_str("</table>");
        Ok(page("impact", &body))
    })
    .await
}

pub async fn action(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Query,
) -> Result<Html<String>, ApiError> {
    only_params(&query, &[FILTER_PARAMS])?;
    let filters = filters(&query)?;
    let action_id =
        ActionId::parse(&id).map_err(|_| ApiError::NotFound(format!("no Action {id:?}")))?;
    blocking(move || {
        let status: ActionStatus = queries::status(&app.store, app.durable_seq(), &action_id, &filters, &app.config.rules)?
            .ok_or_else(|| ApiError::NotFound(format!("no Action {action_id}")))?;
        caller.require_country(&status.view.country)?;
        let view = &status.view;
        let mut body = format!(
            "<p><a href=\"/\">← all Actions</a></p><h1>{} <small>{}</small></h1><p>{} · {} events · last report {} · <a href=\"/v1/actions/{}\">JSON</a> · <a href=\"/v1/actions/{}/events\">history</a></p>",
            escape(view.title.as_deref().unwrap_or("(not registered)")),
            view.action_id,
            view.country,
            view.event_count,
            view.last_event_on,
            view.action_id,
            view.action_id
        );
        body.push_str("<table><tr><th>Outcome</th><th>Track</th><th>Stage</th><th>Since</th><th>Highest</th><th>State</th><th>Expected</th><th>Verification</th></tr>");
        for outcome in &view.outcomes {
            let expected = outcome.expected.as_ref().map_or(String::from("—"), |e| format!("{} by {} <small>({:?})</small>", e.stage, e.by, e.date_source));
            let _ = write!(
                body,
                "<tr><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{state}\">{state}</td><td>{expected}</td><td>{:?}</td></tr>",
                escape(&outcome.title),
                outcome.outcome_id,
                outcome.track,
                outcome.stage,
                outcome.stage_since,
                outcome.highest_stage.unwrap_or("—"),
                outcome.verification,
                state = outcome.state.as_str(),
            );
        }
        body.push_str("</table><h2>Flags</h2><ul>");
        for flag in &status.flags {
            let _ = write!(
                body,
                "<li><span class=\"flag\">{}</span> {} {}</li>",
                flag.flag.as_str(),
                flag.outcome_id.as_ref().map_or(String::new(), |id| id.to_string()),
                escape(&flag.detail)
            );
        }
        body.push_str("</ul>");
        Ok(page(&format!("impact: {}", view.action_id), &body))
    })
    .await
}
