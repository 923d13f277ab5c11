//! Reviews over HTTP: run one now, list them, read one as JSON or Markdown.

use super::{
    blocking, filters, noted, only_params, parse_date, ApiError, Caller, Query, FILTER_PARAMS,
};
use crate::app::App;
use crate::domain::ids::Country;
use crate::domain::review::{render_markdown, ReviewReport};
use crate::queries;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReviewRequest {
    as_of: Option<String>,
    country: Option<String>,
}

/// `format=markdown` (or `json`, the default).
const FORMAT_PARAMS: &[&str] = &["format"];

/// Markdown when `format=markdown`, or when no format is named and `Accept` asks for it.
fn wants_markdown(query: &super::Query, headers: &HeaderMap) -> Result<bool, ApiError> {
    match query.get("format").map(String::as_str) {
        Some("markdown") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::BadQuery(format!(
            "format must be json or markdown, not {other:?}"
        ))),
        None => Ok(super::accepts(headers, "text/markdown")),
    }
}

fn markdown(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A review's scope as asked, by the API or the page's form: what reads, and for each field
/// that does not, its name and why.
pub fn review_scope(
    as_of: Option<&str>,
    country: Option<&str>,
) -> (
    Option<chrono::NaiveDate>,
    Option<Country>,
    Vec<(&'static str, String)>,
) {
    let mut faults = Vec::new();
    let as_of = as_of.and_then(|text| noted(&mut faults, "as_of", parse_date("as_of", text)));
    let country = country.and_then(|text| {
        let parsed = Country::parse_assigned(text).map_err(|_| {
            ApiError::BadQuery(format!(
                "{text:?} is not a country code (two letters, as TH): leave country out to review every country"
            ))
        });
        noted(&mut faults, "country", parsed)
    });
    (as_of, country, faults)
}

#[utoipa::path(post, path = "/v1/reviews", operation_id = "create_review", tag = "reviews",
    params(crate::api::openapi::Format),
    request_body(content = crate::api::openapi::ReviewRequest, description = "The scope (both optional; an empty body reviews every country as of today)"),
    responses((status = 201, description = "The review's report", content(
        (crate::domain::review::ReviewReport = "application/json"),
        (String = "text/markdown"))), crate::api::openapi::WriteErrors))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_reviewer()?;
    only_params(&query, &[FORMAT_PARAMS])?;
    let markdown_wanted = wants_markdown(&query, &headers)?;
    let request: ReviewRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReviewRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::MalformedJson(format!("the review request: {e}")))?
    };
    let (as_of, country, faults) =
        review_scope(request.as_of.as_deref(), request.country.as_deref());
    if let Some((_, message)) = faults.into_iter().next() {
        return Err(ApiError::BadQuery(message));
    }
    let report = app.run_review(as_of, country, None).await?;
    if markdown_wanted {
        return Ok((StatusCode::CREATED, markdown(render_markdown(&report))).into_response());
    }
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

#[utoipa::path(get, path = "/v1/reviews", operation_id = "list_reviews", tag = "reviews",
    params(crate::api::openapi::TimeTravel, crate::api::openapi::Format),
    responses((status = 200, description = "The stored reviews, as known under the filters", content(
        (crate::api::openapi::ReviewList = "application/json"),
        (String = "text/markdown"))), crate::api::openapi::ReadErrors))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require_reviewer()?;
    only_params(&query, &[FILTER_PARAMS, FORMAT_PARAMS])?;
    let filters = filters(&query)?;
    let markdown_wanted = wants_markdown(&query, &headers)?;
    let reports: Vec<ReviewReport> = blocking(move || {
        Ok(queries::reviews_known(
            &app.store,
            app.durable_seq(),
            &filters,
        )?)
    })
    .await?;
    if markdown_wanted {
        let mut text = String::from("# Impact reviews\n\n| review | as of | log position | country | slot | outcomes | findings |\n|---|---|---:|---|---|---:|---:|\n");
        for r in &reports {
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.review_id,
                r.as_of,
                r.until_seq,
                r.country.as_ref().map_or("all", |c| c.as_str()),
                r.schedule_slot.as_deref().unwrap_or("-"),
                r.totals.outcomes,
                r.findings.len()
            ));
        }
        return Ok(markdown(text));
    }
    let reviews: Vec<_> = reports
        .iter()
        .map(|r| json!({"review_id": r.review_id, "as_of": r.as_of, "until_seq": r.until_seq, "country": r.country, "schedule_slot": r.schedule_slot, "totals": r.totals}))
        .collect();
    Ok(Json(json!({"reviews": reviews})).into_response())
}

#[utoipa::path(get, path = "/v1/reviews/{id}", operation_id = "get_review", tag = "reviews",
    params(("id" = String, Path, description = "The review's id"), crate::api::openapi::Format),
    responses((status = 200, description = "The review's report, whole", content(
        (crate::domain::review::ReviewReport = "application/json"),
        (String = "text/markdown"))), crate::api::openapi::ReadErrors))]
pub async fn one(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Query,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require_reviewer()?;
    only_params(&query, &[FORMAT_PARAMS])?;
    let markdown_wanted = wants_markdown(&query, &headers)?;
    let review_id = id.clone();
    let report = blocking(move || Ok(queries::review(&app.store, app.durable_seq(), &review_id)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no review {id:?}")))?;
    if markdown_wanted {
        return Ok(markdown(render_markdown(&report)));
    }
    Ok(Json(report).into_response())
}

#[utoipa::path(get, path = "/v1/reviews/{id}/changes", operation_id = "get_review_changes", tag = "reviews",
    params(("id" = String, Path, description = "The review's id"), crate::api::openapi::Format),
    responses((status = 200, description = "What changed since the previous review of the same scope", content(
        (crate::domain::review::ReviewChanges = "application/json"),
        (String = "text/markdown"))), crate::api::openapi::ReadErrors))]
pub async fn changes(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Query,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require_reviewer()?;
    only_params(&query, &[FORMAT_PARAMS])?;
    let markdown_wanted = wants_markdown(&query, &headers)?;
    let review_id = id.clone();
    let changes = blocking(move || {
        let found = queries::review_and_previous(&app.store, app.durable_seq(), &review_id)?;
        Ok(found.map(|(now, previous)| crate::domain::review::changes(previous.as_ref(), &now)))
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no review {id:?}")))?;
    if markdown_wanted {
        return Ok(markdown(crate::domain::review::render_changes_markdown(
            &changes,
        )));
    }
    Ok(Json(changes).into_response())
}
