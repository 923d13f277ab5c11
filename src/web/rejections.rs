//! `/rejections` (CONTRACT.md §4.3): what the service refused and why, newest first, for
//! evaluators and admins; each raw payload shown as text (escaped by the template).

use super::form::{asked, Form};
use super::{render, words, Chrome, PageCaller, PageError};
use crate::api::{blocking, noted, parse_u64, Query};
use crate::app::App;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Rejections on one page.
const PAGE: usize = 100;
/// A raw payload is shown up to this many characters (the JSON API has it whole).
const RAW_SHOWN: usize = 4096;

struct Row {
    id: u64,
    received_at: String,
    source: String,
    subject: String,
    event_id: String,
    code: String,
    what: String,
    message: String,
    raw: String,
    cut: bool,
    /// The payload's whole length when the store kept only its first 64 KiB.
    stored_of: Option<u64>,
}

#[derive(Template)]
#[template(path = "rejections.html")]
struct RejectionsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    /// The `before` of the next (older) page, when there is one.
    older: Option<u64>,
    newest: bool,
    unknown: Option<String>,
    error: Option<String>,
}

pub async fn page(
    State(app): State<Arc<App>>,
    PageCaller { caller, chrome }: PageCaller,
    query: Query,
) -> Result<Response, PageError> {
    caller.require_reviewer()?;
    let query = asked(&query);
    let mut faults = Vec::new();
    let before = query
        .get("before")
        .and_then(|text| noted(&mut faults, "before", parse_u64("before", text)));
    let form = Form::new(&query, &["before"], &[&["before"]], faults);
    let status = form.status();
    let html = blocking(move || {
        // Only what is durable: a crash cannot give a shown id to another rejection.
        let durable = app.writer.position().last_rejection;
        let start = before.unwrap_or(u64::MAX).min(durable.saturating_add(1));
        let mut records = app
            .store
            .rejections_newest_first(start)
            .take(PAGE + 1)
            .collect::<Result<Vec<_>, _>>()?;
        let more = records.len() > PAGE;
        records.truncate(PAGE);
        let older = more.then(|| records.last().map(|r| r.id)).flatten();
        let rows = records
            .into_iter()
            .map(|record| {
                let cut = record.raw.chars().count() > RAW_SHOWN;
                let raw = match record.raw_encoding.as_deref() {
                    Some(encoding) => format!("({encoding}) {}", record.raw),
                    None => record.raw,
                };
                Row {
                    id: record.id,
                    received_at: record.received_at,
                    source: match record.source.as_str() {
                        "nats" => "straight to NATS".into(),
                        "http" => "over HTTP".into(),
                        other => other.to_owned(),
                    },
                    subject: record.subject.unwrap_or_default(),
                    event_id: record.event_id.unwrap_or_default(),
                    what: words::rejection(&record.code).to_owned(),
                    code: record.code,
                    message: record.message,
                    raw: raw.chars().take(RAW_SHOWN).collect(),
                    cut,
                    stored_of: record.raw_bytes,
                }
            })
            .collect();
        render(RejectionsPage {
            chrome,
            rows,
            older,
            newest: before.is_none(),
            error: form.fields["before"].error.clone(),
            unknown: form.unknown,
        })
    })
    .await?;
    Ok((status, html).into_response())
}
