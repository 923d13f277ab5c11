//! The HTTP API (CONTRACT.md §4): routes, auth, query parsing, error → status. The pages are
//! `crate::web`'s, merged into the same router.

pub mod actions;
pub mod auth;
mod error;
pub mod events;
mod exports;
mod guard;
pub mod openapi;
pub mod reviews;
mod view_cache;

pub use auth::Caller;
pub use error::{rejection_status, ApiError};
pub use view_cache::{ViewCache, VIEW_CACHE_BYTES};

use crate::app::App;
use crate::domain::fold::Filters;
use crate::domain::validate::SCHEMA_DOCUMENTS;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A request body is at most this large: 1,000 events of 64 KiB and their punctuation.
pub const BODY_BYTES_MAX: usize = 1000 * 64 * 1024 + 64 * 1024;
/// Events in one body at most.
pub const BODY_EVENTS_MAX: usize = 1000;

pub fn router(app: Arc<App>) -> Router {
    let (v1, _) = v1_routes();
    v1.route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(
            crate::web::routes().layer(axum::middleware::from_fn_with_state(
                app.clone(),
                crate::web::error_chrome,
            )),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(guard::GuardLayer {
            auth_enabled: app.config.auth_enabled(),
        })
        .with_state(app)
}

/// The `/v1` paths that take a `POST` (the guard asks them for JSON); a test holds this to
/// `v1_routes`.
pub const POST_PATHS: &[&str] = &["/v1/events", "/v1/reviews"];

/// The `/v1` routes, and each as `(method, path)`: the router is built from this one list, so
/// that a test can hold the API description (`openapi.rs`) to what the router serves.
pub fn v1_routes() -> (Router<Arc<App>>, Vec<(&'static str, &'static str)>) {
    use axum::routing::MethodRouter;
    let mut table = Vec::new();
    let mut router = Router::new();
    let mut add = |path: &'static str, methods: &[&'static str], route: MethodRouter<Arc<App>>| {
        table.extend(methods.iter().map(|method| (*method, path)));
        router = std::mem::take(&mut router).route(path, route);
    };
    add(
        "/v1/events",
        &["post", "get"],
        post(events::post_events).get(events::log),
    );
    add("/v1/rejections", &["get"], get(events::rejections));
    add("/v1/actions", &["get"], get(actions::list));
    add("/v1/actions/{id}", &["get"], get(actions::view));
    add("/v1/actions/{id}/events", &["get"], get(actions::history));
    add("/v1/actions/{id}/compare", &["get"], get(actions::compare));
    add(
        "/v1/reviews",
        &["post", "get"],
        post(reviews::create).get(reviews::list),
    );
    add("/v1/reviews/{id}", &["get"], get(reviews::one));
    add("/v1/reviews/{id}/changes", &["get"], get(reviews::changes));
    add(
        "/v1/exports/outcomes.csv",
        &["get"],
        get(exports::outcomes_csv),
    );
    add(
        "/v1/exports/outcomes.xlsx",
        &["get"],
        get(exports::outcomes_xlsx),
    );
    add("/v1/exports/iati.xml", &["get"], get(exports::iati_xml));
    add("/v1/schemas", &["get"], get(schemas));
    add("/v1/schemas/{name}", &["get"], get(schema));
    add("/v1/openapi.json", &["get"], get(openapi::openapi_json));
    (router, table)
}

/// Whether `path` is the API's (errors as the §4 body) rather than a page's (an error page).
pub fn is_api(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// A query string read strictly (CONTRACT.md §11): each parameter at most once (a repeated
/// one is `400 bad_query`: which of the two was meant?), `+` as a space, and percent-escapes
/// that decode to UTF-8. A `/v1` request that fails gets the error body, a page the error page.
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, String>);

impl std::ops::Deref for Query {
    type Target = HashMap<String, String>;
    fn deref(&self) -> &HashMap<String, String> {
        &self.0
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Query {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Query, Response> {
        parse_query(parts.uri.query().unwrap_or("")).map_err(|error| {
            if is_api(parts.uri.path()) {
                error.into_response()
            } else {
                crate::web::PageError(error).into_response()
            }
        })
    }
}

/// The parameters of a query string, each once.
pub fn parse_query(text: &str) -> Result<Query, ApiError> {
    let mut params = HashMap::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |part: &str| {
            let spaced = part.replace('+', " ");
            percent_encoding::percent_decode_str(&spaced)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| {
                    ApiError::BadQuery(format!(
                        "the query parameter {:?} is not UTF-8 once decoded",
                        name.chars().take(64).collect::<String>()
                    ))
                })
        };
        match params.entry(decode(name)?) {
            std::collections::hash_map::Entry::Occupied(taken) => {
                return Err(ApiError::BadQuery(format!(
                    "the query parameter {:?} is given more than once: give it once",
                    taken.key()
                )))
            }
            std::collections::hash_map::Entry::Vacant(free) => {
                free.insert(decode(value)?);
            }
        }
    }
    Ok(Query(params))
}

/// A date `YYYY-MM-DD` exactly: four digits of a year from 0001 (no sign, no year 0000),
/// month and day of two digits each, a day the calendar has.
pub fn parse_date(name: &str, text: &str) -> Result<NaiveDate, ApiError> {
    let bad = || ApiError::BadQuery(format!("{name} must be a date YYYY-MM-DD, not {text:?}"));
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped || text.starts_with("0000") {
        return Err(bad());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad())
}

/// A whole number in plain digits (no sign, no spaces) from 0 to 2^63 − 1 (what a signed
/// 64-bit integer, and so every client, can hold; the API description says `int64`).
pub fn parse_u64(name: &str, text: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::BadQuery(format!(
            "{name} must be a whole number from 0 to {}, not {text:?}",
            i64::MAX
        ))
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u64>()
        .ok()
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(bad)
}

/// The time-travel filters of CONTRACT.md §3.1, which every read of a view, history or review
/// takes.
pub const FILTER_PARAMS: &[&str] = &["as_of", "until_seq", "known_at"];

/// Refuses a query parameter the endpoint does not take (`400 bad_query`), naming the ones it
/// does: a mistyped filter (`asof=`, `as-of=`) ignored would answer another question than the
/// one asked, the view as known today instead of on the date the evaluator meant.
pub fn only_params(query: &HashMap<String, String>, groups: &[&[&str]]) -> Result<(), ApiError> {
    let known = |name: &str| groups.iter().any(|group| group.contains(&name));
    let Some(unknown) = query.keys().filter(|name| !known(name)).min() else {
        return Ok(());
    };
    let taken: Vec<&str> = groups.concat();
    Err(ApiError::BadQuery(format!(
        "unknown query parameter {unknown:?}: this endpoint takes {}",
        taken.join(", ")
    )))
}

/// The time-travel filters of CONTRACT.md §3.1 from a query string.
pub fn filters(query: &HashMap<String, String>) -> Result<Filters, ApiError> {
    let (filters, faults) = filters_checked(query);
    match faults.into_iter().next() {
        Some((_, message)) => Err(ApiError::BadQuery(message)),
        None => Ok(filters),
    }
}

/// The filters that read, and for each that does not, its name and what is wrong (a page shows
/// each beside its field).
pub fn filters_checked(query: &HashMap<String, String>) -> (Filters, Vec<(&'static str, String)>) {
    let mut faults = Vec::new();
    let as_of = query
        .get("as_of")
        .and_then(|text| noted(&mut faults, "as_of", parse_date("as_of", text)));
    let until_seq = query
        .get("until_seq")
        .and_then(|text| noted(&mut faults, "until_seq", parse_u64("until_seq", text)));
    let known_at = query.get("known_at").and_then(|text| {
        // Year 0000 is RFC 3339 but no date the service takes (as in `parse_date`).
        let parsed = DateTime::parse_from_rfc3339(text)
            .ok()
            .filter(|_| !text.starts_with("0000"))
            .map(|at| at.with_timezone(&Utc))
            .ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "known_at must be an RFC 3339 timestamp, not {text:?}"
                ))
            });
        noted(&mut faults, "known_at", parsed)
    });
    (
        Filters {
            as_of,
            until_seq,
            known_at,
        },
        faults,
    )
}

/// The value, or `None` with the fault noted under `name`.
pub fn noted<T>(
    faults: &mut Vec<(&'static str, String)>,
    name: &'static str,
    result: Result<T, ApiError>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(ApiError::BadQuery(message)) => {
            faults.push((name, message));
            None
        }
        Err(other) => {
            faults.push((name, other.to_string()));
            None
        }
    }
}

/// A response of JSON already rendered.
pub fn json_body(body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// Does the request's `Accept` header name `media_type`?
pub fn accepts(headers: &axum::http::HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains(media_type))
}

/// Runs blocking store reads off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[utoipa::path(get, path = "/v1/schemas", operation_id = "list_schemas", tag = "meta", security(()),
    responses((status = 200, description = "The names of the JSON Schemas the service validates with", body = openapi::SchemaList)))]
async fn schemas() -> Json<Value> {
    Json(json!({"schemas": SCHEMA_DOCUMENTS.iter().map(|(name, _)| name).collect::<Vec<_>>()}))
}

#[utoipa::path(get, path = "/v1/schemas/{name}", operation_id = "get_schema", tag = "meta", security(()),
    params(("name" = String, Path, description = "A schema's name, with or without .json")),
    responses((status = 200, description = "The JSON Schema document", content_type = "application/schema+json", body = Object), openapi::ReadErrors))]
async fn schema(Path(name): Path<String>) -> Result<Response, ApiError> {
    let name = name.strip_suffix(".json").unwrap_or(&name);
    let (_, document) = SCHEMA_DOCUMENTS
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| ApiError::NotFound(format!("no schema {name:?}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/schema+json")],
        *document,
    )
        .into_response())
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `200` when reads and writes both work; `503` when either does not, saying which and why:
/// writes can be down (free space below the reserve, a failed write) while reads go on.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let bus_ready = app.bus.is_ready();
    let writes_down = app.writer.writes_down();
    let mut body = json!({
        "store": "open",
        "reads": "up",
        "writes": if writes_down.is_some() { "down" } else { "up" },
        "bus": if bus_ready { "ready" } else { "unavailable" },
        "log_position": app.writer.position().last_seq,
        "visible_position": app.writer.visible_seq(),
        "free_mib": app.store.health().free_bytes() >> 20,
    });
    if let Some(down) = &writes_down {
        body["writes_down_because"] = json!(down.to_string());
    }
    if let crate::bus::Bus::Nats(bus) = &app.bus {
        body["consumer_lag"] = json!(bus.consumer_lag());
        if bus.is_stalled() {
            body["consumer"] = json!("stalled");
        }
    }
    // Not a reason to take the instance out of service: reads and writes go on.
    if let Some(cause) = app.review_failure() {
        body["scheduled_review"] = json!("failing");
        body["scheduled_review_failing_because"] = json!(cause);
    }
    let status = if bus_ready && writes_down.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    app.metrics
        .writes_up
        .set(i64::from(app.writer.writes_down().is_none()));
    app.metrics
        .store_free_bytes
        .set(app.store.health().free_bytes() as i64);
    if let crate::bus::Bus::Nats(bus) = &app.bus {
        app.metrics.consumer_lag.set(bus.consumer_lag() as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}
