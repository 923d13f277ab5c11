//! `POST /v1/events`, the global log and the rejections.

use super::{
    blocking, only_params, parse_u64, ApiError, Caller, Query, BODY_BYTES_MAX, BODY_EVENTS_MAX,
};
use crate::app::App;
use crate::bus::{Bus, Status};
use crate::domain::event::EventKind;
use crate::domain::validate::{Origin, Rejection, RejectionCode};
use crate::ingest::{dry_run, Incoming, ItemOutcome, Payload, Source};
use crate::store::RejectionRecord;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

const PAGE_EVENTS_DEFAULT: usize = 1000;
const PAGE_EVENTS_MAX: usize = 10_000;
/// NDJSON streams are read from the store in chunks of about this size.
const STREAM_CHUNK_BYTES: usize = 64 << 10;

#[utoipa::path(post, path = "/v1/events", operation_id = "post_events", tag = "events",
    params(crate::api::openapi::Wait),
    responses((status = 202, description = "Every event accepted (or a duplicate of the same content); with wait=true, applied", body = crate::api::openapi::SubmitResults), crate::api::openapi::WriteErrors))]
pub async fn post_events(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
    body: Bytes,
) -> Result<Response, ApiError> {
    only_params(&query, &[&["wait"]])?;
    let wait = match query.get("wait").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadQuery(format!(
                "wait must be true or false, not {other:?}"
            )))
        }
    };
    if body.len() > BODY_BYTES_MAX {
        count(&app, RejectionCode::PayloadTooLarge, 1);
        return Err(ApiError::PayloadTooLarge(format!(
            "a body is at most {BODY_BYTES_MAX} bytes"
        )));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        count(&app, RejectionCode::MalformedJson, 1);
        ApiError::MalformedJson(format!("the body is not JSON: {e}"))
    })?;
    let elements = match value {
        Value::Array(elements) if elements.is_empty() => {
            return Err(ApiError::MalformedJson("the array holds no event".into()))
        }
        Value::Array(elements) if elements.len() > BODY_EVENTS_MAX => {
            count(&app, RejectionCode::PayloadTooLarge, 1);
            return Err(ApiError::PayloadTooLarge(format!(
                "a body holds at most {BODY_EVENTS_MAX} events, this has {}",
                elements.len()
            )));
        }
        Value::Array(elements) => elements,
        object @ Value::Object(_) => vec![object],
        _ => {
            count(&app, RejectionCode::MalformedJson, 1);
            return Err(ApiError::MalformedJson(
                "the body is an event object or an array of them".into(),
            ));
        }
    };

    let results = submit(&app, &caller, elements, wait).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"results": results}))).into_response())
}

/// Submits `elements` (event objects as sent) for `caller`: every check of `POST /v1/events`
/// (schema, role and country, retraction rights, the log on NATS), then the bus; with `wait`,
/// until applied. Each event's result as `POST /v1/events` answers it. The forms of
/// `/submit` come this way too, so a form can do nothing the API would refuse.
pub async fn submit(
    app: &Arc<App>,
    caller: &Caller,
    elements: Vec<Value>,
    wait: bool,
) -> Result<Vec<Value>, ApiError> {
    let app = app.clone();
    let schemas = app.schemas.clone();
    let parsed_all = blocking(move || {
        Ok(elements
            .into_iter()
            .map(|element| schemas.parse_value(element, Origin::Client))
            .collect::<Vec<_>>())
    })
    .await?;
    let mut parsed = Vec::with_capacity(parsed_all.len());
    let mut failures: Vec<(usize, Rejection)> = Vec::new();
    for (index, result) in parsed_all.into_iter().enumerate() {
        match result {
            Ok(event) => {
                let target_type = match &event.kind {
                    EventKind::Retracted { target } => {
                        target_type(&app, &parsed, &event.envelope.action_id, target)?
                    }
                    _ => None,
                };
                caller
                    .may_submit(&event, target_type.as_deref())
                    .map_err(|error| match error {
                        ApiError::Forbidden(message) => ApiError::ForbiddenEvent { index, message },
                        other => other,
                    })?;
                parsed.push(event);
            }
            Err(rejection) => failures.push((index, rejection)),
        }
    }
    if !failures.is_empty() {
        return Err(rejected(&app, failures));
    }

    // On NATS, check the body against the log before publishing, so a bad body publishes
    // nothing; events already in the log are answered as duplicates without a publish.
    let mut stored_seq: Vec<Option<u64>> = vec![None; parsed.len()];
    if let Bus::Nats(bus) = &app.bus {
        // What this instance published for these Actions is applied first, so the check sees
        // a client's own accepted events.
        bus.settle(parsed.iter().map(|event| &event.envelope.action_id))
            .await
            .map_err(ApiError::from)?;
        let items: Vec<Incoming> = parsed
            .iter()
            .map(|event| Incoming {
                payload: Payload::Parsed(Box::new(event.clone())),
                origin: Origin::Client,
                source: Source::Http,
                submitted_by: None,
            })
            .collect();
        let check_app = app.clone();
        let outcomes = blocking(move || {
            dry_run(&check_app.store, &check_app.schemas, items)
                .map_err(|e| ApiError::from(crate::bus::BusError::from(e)))
        })
        .await
        .map_err(|error| match error {
            ApiError::Rejected(failures) => rejected(&app, failures),
            other => other,
        })?;
        for (slot, outcome) in stored_seq.iter_mut().zip(outcomes) {
            if let ItemOutcome::Duplicate { seq } = outcome {
                *slot = Some(seq);
            }
        }
        // A duplicate names its stored seq: only once a crash cannot give it to another event.
        if let Some(newest) = stored_seq.iter().flatten().max() {
            if !app.wait_durable(*newest).await {
                return Err(ApiError::Unavailable(
                    "the log could not be made durable in time; retry".into(),
                ));
            }
        }
    }

    let ids_and_hashes: Vec<(uuid::Uuid, [u8; 32])> = parsed
        .iter()
        .map(|event| (event.envelope.event_id, event.hash))
        .collect();
    let to_publish: Vec<_> = parsed
        .into_iter()
        .zip(&stored_seq)
        .filter(|(_, seq)| seq.is_none())
        .map(|(event, _)| event)
        .collect();
    let published = if to_publish.is_empty() {
        Vec::new()
    } else {
        app.bus
            .publish(to_publish, Origin::Client, caller.name.clone())
            .await
            .map_err(|error| match ApiError::from(error) {
                ApiError::Rejected(failures) => rejected(&app, failures),
                other => other,
            })?
    };
    // On NATS, the same `event_id` published just before with other content: if nothing of
    // this body was stored, the body is refused as a whole (`409`), as on the embedded bus.
    let conflicts: Vec<(usize, Rejection)> = stored_seq
        .iter()
        .enumerate()
        .filter(|(_, stored)| stored.is_none())
        .zip(&published)
        .filter(|(_, p)| p.status == Status::Conflict)
        .map(|((index, _), p)| (index, conflict(&p.event_id)))
        .collect();
    if !conflicts.is_empty() && conflicts.len() == stored_seq.len() {
        return Err(rejected(&app, conflicts));
    }
    if wait {
        if let Some(last) = published.iter().filter_map(|p| p.stream_seq).max() {
            if !app.wait_applied(last).await {
                return Err(ApiError::Unavailable("the events are durable in the stream but were not applied in time; read them later".into()));
            }
        }
    }
    let mut published = published.into_iter();
    let mut results = Vec::with_capacity(stored_seq.len());
    for ((event_id, hash), stored) in ids_and_hashes.into_iter().zip(stored_seq) {
        let mut result = match stored {
            Some(seq) => {
                json!({"event_id": event_id, "status": "duplicate", "stream_seq": null, "seq": seq})
            }
            None => {
                let p = published.next().ok_or_else(|| {
                    ApiError::Internal("the bus answered for fewer events than it was sent".into())
                })?;
                let status = match p.status {
                    Status::Accepted => "accepted",
                    Status::Duplicate => "duplicate",
                    Status::Conflict => {
                        let rejection = conflict(&event_id);
                        results.push(json!({"event_id": event_id, "status": "rejected",
                            "error": {"code": rejection.code.as_str(), "message": rejection.message}}));
                        continue;
                    }
                };
                let mut result =
                    json!({"event_id": event_id, "status": status, "stream_seq": p.stream_seq});
                if wait {
                    match p.seq {
                        Some(seq) => result["seq"] = json!(seq),
                        None => fill_applied(&app, &mut result, event_id, hash, p.stream_seq)?,
                    }
                }
                result
            }
        };
        if !wait {
            if let Some(object) = result.as_object_mut() {
                object.remove("seq");
            }
        }
        results.push(result);
    }
    Ok(results)
}

/// The answer for an `event_id` whose stored content is not the one submitted. It names no
/// seq and no country: the stored event may be another country's.
fn conflict(event_id: &uuid::Uuid) -> Rejection {
    Rejection::at(
        RejectionCode::EventIdConflict,
        "/event_id",
        format!("event {event_id} was submitted already with different content"),
    )
}

/// The type of the event a retraction of `action_id` withdraws: earlier in the same body, or
/// in the log, and of the same Action (so that nothing of another Action, perhaps of another
/// country, shows in the answer). `None` otherwise: the writer's rules then reject the
/// retraction, and a target submitted meanwhile cannot be named by one who never saw its id.
fn target_type(
    app: &App,
    earlier: &[crate::domain::validate::Parsed],
    action_id: &crate::domain::ids::ActionId,
    target: &uuid::Uuid,
) -> Result<Option<String>, ApiError> {
    if let Some(event) = earlier.iter().find(|e| e.envelope.event_id == *target) {
        return Ok(
            (event.envelope.action_id == *action_id).then(|| event.envelope.event_type.clone())
        );
    }
    let stored = crate::queries::event_of(&app.store, action_id, target)?;
    Ok(stored.and_then(|(_, event)| event["type"].as_str().map(str::to_owned)))
}

/// After the consumer applied a published event: its seq, or the rejection it met.
fn fill_applied(
    app: &App,
    result: &mut Value,
    event_id: uuid::Uuid,
    hash: [u8; 32],
    stream_seq: Option<u64>,
) -> Result<(), ApiError> {
    if let Some((seq, stored_hash)) = app.store.event_index(&event_id)? {
        if stored_hash == hash {
            result["seq"] = json!(seq);
            return Ok(());
        }
    }
    let rejection: Option<RejectionRecord> = app
        .store
        .rejections_newest_first(u64::MAX)
        .take(10_000)
        .filter_map(Result::ok)
        .find(|record| record.stream_seq == stream_seq);
    if let Some(record) = rejection {
        result["status"] = json!("rejected");
        result["error"] = json!({"code": record.code, "message": record.message});
    } else if app.store.event_index(&event_id)?.is_some() {
        result["status"] = json!("rejected");
        result["error"] = json!({"code": "event_id_conflict", "message": format!("event {event_id} is stored already with different content")});
    }
    Ok(())
}

fn count(app: &App, code: RejectionCode, n: u64) {
    app.metrics.rejected(code, n);
}

fn rejected(app: &App, failures: Vec<(usize, Rejection)>) -> ApiError {
    for (_, rejection) in &failures {
        count(app, rejection.code, 1);
    }
    ApiError::Rejected(failures)
}

/// What a page of the log or of the rejections takes.
const PAGE_PARAMS: &[&str] = &["after", "limit"];

/// The `after` of a page: the seq (or rejection id) the page starts after, 0 by default.
fn after(query: &Query) -> Result<u64, ApiError> {
    query
        .get("after")
        .map(|text| parse_u64("after", text))
        .transpose()
        .map(|after| after.unwrap_or(0))
}

fn page_limit(query: &Query) -> Result<usize, ApiError> {
    let limit = query
        .get("limit")
        .map(|text| parse_u64("limit", text))
        .transpose()?
        .unwrap_or(PAGE_EVENTS_DEFAULT as u64);
    if limit == 0 || limit > PAGE_EVENTS_MAX as u64 {
        return Err(ApiError::BadQuery(format!(
            "limit must be 1 to {PAGE_EVENTS_MAX}"
        )));
    }
    Ok(limit as usize)
}

/// `GET /v1/events`: a JSON page, or every event after `after` as NDJSON. The stream has no
/// page size (CONTRACT §4), but a `limit` sent with it is still checked, not passed over.
#[utoipa::path(get, path = "/v1/events", operation_id = "get_events", tag = "events",
    params(crate::api::openapi::Page),
    responses((status = 200, description = "A page of the global log in seq order (with Accept: application/x-ndjson, every event after `after`, streamed)", content(
        (crate::api::openapi::EventLog = "application/json"),
        (String = "application/x-ndjson"))), crate::api::openapi::ReadErrors))]
pub async fn log(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require_reviewer()?;
    only_params(&query, &[PAGE_PARAMS])?;
    let after = after(&query)?;
    let limit = page_limit(&query)?;
    if super::accepts(&headers, "application/x-ndjson") {
        return stream_ndjson(app, after);
    }
    blocking(move || {
        let mut body = Vec::with_capacity(limit * 512);
        body.extend_from_slice(b"{\"events\":[");
        let (next_after, _) = durable_events(&app, after, app.durable_seq(), limit, |json| {
            if body.len() > b"{\"events\":[".len() {
                body.push(b',');
            }
            body.extend_from_slice(json);
            0
        })?;
        let next_after = next_after.unwrap_or(after);
        body.extend_from_slice(format!("],\"next_after\":{next_after}}}").as_bytes());
        Ok(super::json_body(body))
    })
    .await
}

/// Hands `take` each event after `after` up to `durable` (CONTRACT.md §11: nothing a crash
/// could take back), at most `limit` of them, until `take` returns a size of
/// `STREAM_CHUNK_BYTES` or more (0 takes them all). Returns the last seq handed over and whether the log goes on past it.
fn durable_events(
    app: &App,
    after: u64,
    durable: u64,
    limit: usize,
    mut take: impl FnMut(&[u8]) -> usize,
) -> Result<(Option<u64>, bool), ApiError> {
    let mut last = None;
    for item in app.store.log_after(after).take(limit) {
        let (seq, json) = item?;
        if seq > durable {
            return Ok((last, false));
        }
        last = Some(seq);
        if take(&json) >= STREAM_CHUNK_BYTES {
            return Ok((last, seq < durable));
        }
    }
    Ok((last, last.is_some_and(|seq| seq < durable)))
}

/// The NDJSON stream: every durable event after `after` as of the request, read a chunk at a
/// time when the client has taken the one before. A slow reader holds no thread and at most
/// one chunk of memory (besides the socket's buffers).
fn stream_ndjson(app: Arc<App>, after: u64) -> Result<Response, ApiError> {
    let Ok(permit) = app.streams.clone().try_acquire_owned() else {
        return Err(ApiError::Unavailable(format!(
            "{} streams of the log are open, the most this service serves at once \
             (server.max_streams); retry later, or read pages of the log",
            app.config.max_streams
        )));
    };
    let durable = app.durable_seq();
    // The permit goes with the stream, and comes back when the response ends or is dropped.
    let permit = Arc::new(permit);
    let stream = futures::stream::try_unfold(Some(after), move |from| {
        let (app, _permit) = (app.clone(), permit.clone());
        async move {
            let Some(from) = from else {
                return Ok::<_, std::io::Error>(None);
            };
            let (chunk, last, more) = blocking(move || {
                let mut chunk = Vec::with_capacity(STREAM_CHUNK_BYTES + 4096);
                let (last, more) = durable_events(&app, from, durable, usize::MAX, |json| {
                    chunk.extend_from_slice(json);
                    chunk.push(b'\n');
                    chunk.len()
                })?;
                Ok((chunk, last, more))
            })
            .await
            .map_err(|error| std::io::Error::other(error.to_string()))?;
            match last {
                None => Ok(None),
                Some(last) => Ok(Some((Bytes::from(chunk), more.then_some(last)))),
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/rejections", operation_id = "get_rejections", tag = "events",
    params(crate::api::openapi::Page),
    responses((status = 200, description = "Rejected messages from NATS, oldest first", body = crate::api::openapi::Rejections), crate::api::openapi::ReadErrors))]
pub async fn rejections(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
) -> Result<Response, ApiError> {
    caller.require_reviewer()?;
    only_params(&query, &[PAGE_PARAMS])?;
    let after = after(&query)?;
    let limit = page_limit(&query)?;
    blocking(move || {
        // Only what is durable: a crash cannot give a shown id to another rejection.
        let durable = app.writer.position().last_rejection;
        let rejections = app
            .store
            .rejections_after(after)
            .take(limit)
            .filter(|item| !matches!(item, Ok(record) if record.id > durable))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Json(json!({"rejections": rejections})).into_response())
    })
    .await
}
