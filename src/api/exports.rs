//! `GET /v1/exports/outcomes.csv`, `.xlsx` and `iati.xml` (CONTRACT.md §9): the outcomes in
//! scope; the CSV and the IATI document streamed as they are written, so the service's memory
//! does not grow with the number of rows.

use super::actions::{ListFilter, LIST_PARAMS};
use super::{filters, only_params, ApiError, Caller, Query, FILTER_PARAMS};
use crate::app::App;
use crate::exports::iati::{write_iati, NOTHING_IN_SCOPE};
use crate::exports::{write_csv, xlsx, Asked, ExportError};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// What the export takes besides the filters.
const EXPORT_PARAMS: &[&str] = &["bom"];

/// A chunk of the body is sent once it holds this much.
const CHUNK_BYTES: usize = 64 << 10;

#[utoipa::path(get, path = "/v1/exports/outcomes.csv", operation_id = "export_outcomes_csv", tag = "exports",
    params(crate::api::openapi::TimeTravel, crate::api::openapi::ListFilters, crate::api::openapi::Bom),
    responses((status = 200, description = "One row per outcome in scope (RFC 4180)", content_type = "text/csv", body = String), crate::api::openapi::ReadErrors))]
pub async fn outcomes_csv(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
) -> Result<Response, ApiError> {
    only_params(&query, &[FILTER_PARAMS, LIST_PARAMS, EXPORT_PARAMS])?;
    let (filters, list) = scope(&query)?;
    let bom = match query.get("bom").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadQuery(format!(
                "bom must be true or false, not {other:?}"
            )))
        }
    };
    let body = streamed(app, caller, filters, list, move |app, asked, out| {
        write_csv(
            &app.store,
            app.durable_seq(),
            &app.config.rules,
            asked,
            bom,
            out,
        )
    })
    .await?
    .ok_or_else(|| ApiError::Internal("the CSV export wrote nothing".into()))?;
    Ok(attachment("text/csv; charset=utf-8", "outcomes.csv", body))
}

/// `GET /v1/exports/iati.xml`: `404` when the export is not configured (no `[iati]`) or no
/// Action is in scope (an IATI document holds at least one activity).
#[utoipa::path(get, path = "/v1/exports/iati.xml", operation_id = "export_iati", tag = "exports",
    params(crate::api::openapi::TimeTravel, crate::api::openapi::ListFilters),
    responses((status = 200, description = "An IATI Activity Standard 2.03 document", content_type = "application/xml", body = String), crate::api::openapi::ReadErrors))]
pub async fn iati_xml(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
) -> Result<Response, ApiError> {
    only_params(&query, &[FILTER_PARAMS, LIST_PARAMS])?;
    let (filters, list) = scope(&query)?;
    let Some(iati) = app.config.iati.clone() else {
        return Err(ApiError::NotFound(
            "the IATI export is off: the configuration has no [iati] section \
             (reporting_org_ref, reporting_org_name)"
                .into(),
        ));
    };
    let body = streamed(app, caller, filters, list, move |app, asked, out| {
        write_iati(
            &app.store,
            app.durable_seq(),
            &app.config.rules,
            asked,
            &iati,
            out,
        )
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(NOTHING_IN_SCOPE.into()))?;
    Ok(attachment("application/xml", "iati.xml", body))
}

fn attachment(media_type: &'static str, name: &str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, media_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Runs `write` on a blocking thread into a body streamed as it fills: `None` when it wrote
/// nothing at all. An error before the first chunk is an error answer; after it, the body
/// ends in an error, so the client sees a cut response, never a short file that looks whole.
async fn streamed(
    app: Arc<App>,
    caller: Caller,
    filters: crate::domain::fold::Filters,
    list: ListFilter,
    write: impl FnOnce(&App, &Asked<'_>, &mut Chunks) -> Result<u64, ExportError> + Send + 'static,
) -> Result<Option<Body>, ApiError> {
    // A few chunks in flight at most: a slow reader holds the writer back, not memory.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let sees = |country: &crate::domain::ids::Country| caller.sees(country);
        let asked = Asked {
            filters: &filters,
            list: &list,
            sees: &sees,
        };
        let mut out = Chunks {
            sender: sender.clone(),
            buffer: Vec::with_capacity(CHUNK_BYTES + 4096),
        };
        if let Err(error) = write(&app, &asked, &mut out) {
            tracing::warn!(%error, "an export stopped");
            let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    let first = match receiver.recv().await {
        None => return Ok(None),
        Some(Err(error)) => return Err(ApiError::Internal(error.to_string())),
        Some(Ok(first)) => first,
    };
    let rest = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
    let stream = futures::StreamExt::chain(futures::stream::iter([Ok(first)]), rest);
    Ok(Some(Body::from_stream(stream)))
}

/// The filters an export takes: those of §3.1 and the list's.
fn scope(query: &Query) -> Result<(crate::domain::fold::Filters, ListFilter), ApiError> {
    Ok((filters(query)?, ListFilter::parse(query)?))
}

#[utoipa::path(get, path = "/v1/exports/outcomes.xlsx", operation_id = "export_outcomes_xlsx", tag = "exports",
    params(crate::api::openapi::TimeTravel, crate::api::openapi::ListFilters),
    responses((status = 200, description = "The CSV's rows in one sheet", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), crate::api::openapi::ReadErrors))]
pub async fn outcomes_xlsx(
    State(app): State<Arc<App>>,
    caller: Caller,
    query: Query,
) -> Result<Response, ApiError> {
    only_params(&query, &[FILTER_PARAMS, LIST_PARAMS])?;
    let (filters, list) = scope(&query)?;
    let workbook = super::blocking(move || {
        let sees = |country: &crate::domain::ids::Country| caller.sees(country);
        let asked = Asked {
            filters: &filters,
            list: &list,
            sees: &sees,
        };
        Ok(xlsx(
            &app.store,
            app.durable_seq(),
            &app.config.rules,
            &asked,
        )?)
    })
    .await?;
    Ok(attachment(XLSX_TYPE, "outcomes.xlsx", workbook.into()))
}

/// The media type of an XLSX workbook.
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The body as it is written: chunks handed to the response as they fill.
struct Chunks {
    sender: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES + 4096),
        ));
        self.deliver(chunk)
    }

    fn deliver(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if bytes.len() >= CHUNK_BYTES {
            // A large piece (the IATI export's batch) goes as its own chunk, copied once.
            self.send()?;
            self.deliver(Bytes::copy_from_slice(bytes))?;
            return Ok(bytes.len());
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
