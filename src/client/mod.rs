//! The field office's client (`impact submit`) and the remote reads of `status`, `history` and
//! `review --server`. Validates locally with the same embedded schemas before sending; keeps what
//! could not be delivered in an outbox directory (`outbox`) and sends it first on the next run.

mod outbox;

use crate::domain::validate::{Origin, Schemas};
use anyhow::{bail, Context};
use outbox::{Kept, Outbox};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Events per request, the API's limit.
const REQUEST_EVENTS_MAX: usize = 1000;
const REQUEST_TIMEOUT_SECS: u64 = 30;

pub struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

/// What became of one event.
#[derive(Debug, Default)]
pub struct SubmitReport {
    pub accepted: usize,
    pub duplicate: usize,
    pub rejected: usize,
    pub queued: usize,
    pub undelivered: usize,
}

enum Delivery {
    /// The server answered for each event: `(event_id, status)`.
    Answered(Vec<(String, String)>),
    /// A client error: `(index or None, code, message)`, the batch was not stored.
    Refused(u16, Vec<(Option<usize>, String, String)>),
    /// Down, 5xx or timeout: worth trying again later.
    Unreachable(String),
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
            .build()?;
        Ok(Client {
            http,
            server: server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.server));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// GETs `path` and returns the body text, or the server's error as an `Err`.
    pub async fn get_text(&self, path: &str, accept: &str) -> anyhow::Result<String> {
        self.text_of(
            self.request(reqwest::Method::GET, path)
                .header("Accept", accept),
        )
        .await
    }

    /// GETs `path` and returns the body as it came (an XLSX is not text), or the server's error.
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| format!("reach {}", self.server))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "{status}: {}",
                error_message(&String::from_utf8_lossy(&bytes))
            );
        }
        Ok(bytes.to_vec())
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        accept: &str,
    ) -> anyhow::Result<String> {
        let request = self
            .request(reqwest::Method::POST, path)
            .header("Accept", accept)
            .json(body);
        self.text_of(request).await
    }

    /// Sends `request`: the answer's body, or the server's error as an `Err`.
    async fn text_of(&self, request: reqwest::RequestBuilder) -> anyhow::Result<String> {
        let response = request
            .send()
            .await
            .with_context(|| format!("reach {}", self.server))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{status}: {}", error_message(&text));
        }
        Ok(text)
    }

    async fn deliver(&self, events: &[Value]) -> Delivery {
        let response = match self
            .request(reqwest::Method::POST, "/v1/events")
            .json(&events)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => return Delivery::Unreachable(error.to_string()),
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(error) if status.is_server_error() => {
                return Delivery::Unreachable(format!("{status}: {error}"))
            }
            Err(error) => {
                return Delivery::Refused(
                    status.as_u16(),
                    vec![(None, "unreadable_answer".into(), error.to_string())],
                )
            }
        };
        if status.is_server_error() {
            return Delivery::Unreachable(format!(
                "{status}: {}",
                body["error"]["message"].as_str().unwrap_or("server error")
            ));
        }
        if status.is_success() {
            let results = body["results"].as_array().cloned().unwrap_or_default();
            return Delivery::Answered(
                results
                    .iter()
                    .map(|r| {
                        (
                            r["event_id"].as_str().unwrap_or("?").to_owned(),
                            r["status"].as_str().unwrap_or("?").to_owned(),
                        )
                    })
                    .collect(),
            );
        }
        let error = &body["error"];
        let code = error["code"].as_str().unwrap_or("error").to_owned();
        let mut faults: Vec<(Option<usize>, String, String)> = error["details"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let message = match d["path"].as_str() {
                    Some(path) => format!("{path}: {}", d["message"].as_str().unwrap_or("")),
                    None => d["message"].as_str().unwrap_or("").to_owned(),
                };
                (
                    d["index"].as_u64().map(|i| i as usize),
                    d["code"].as_str().unwrap_or(&code).to_owned(),
                    message,
                )
            })
            .collect();
        if faults.is_empty() {
            faults.push((
                None,
                code,
                error["message"].as_str().unwrap_or("").to_owned(),
            ));
        }
        Delivery::Refused(status.as_u16(), faults)
    }

    /// Sends the outbox first, then `events`. With an outbox, every event is kept there from
    /// before it is sent until the server has answered for it by name (see `outbox`).
    pub async fn submit(
        &self,
        events: Vec<Value>,
        outbox_dir: Option<&Path>,
    ) -> anyhow::Result<SubmitReport> {
        let mut report = SubmitReport::default();
        let mut outbox = outbox_dir.map(Outbox::open).transpose()?;
        let mut pending: Vec<(Value, Option<Kept>)> = Vec::new();
        if let Some(outbox) = &mut outbox {
            let queued = outbox.queued();
            if !queued.is_empty() {
                eprintln!("sending {} event(s) from the outbox first", queued.len());
            }
            pending.extend(queued.into_iter().map(|(event, kept)| (event, Some(kept))));
            for chunk in events.chunks(REQUEST_EVENTS_MAX) {
                let kept = outbox.keep(chunk)?;
                pending.extend(chunk.iter().cloned().zip(kept.into_iter().map(Some)));
            }
        } else {
            pending.extend(events.into_iter().map(|event| (event, None)));
        }
        for batch in pending.chunks(REQUEST_EVENTS_MAX) {
            let mut batch: Vec<&(Value, Option<Kept>)> = batch.iter().collect();
            // A refused batch stores nothing: the events it names are set aside (answered)
            // and the rest is sent again, as long as each refusal names one.
            let unanswered = loop {
                let values: Vec<Value> = batch.iter().map(|(event, _)| event.clone()).collect();
                match self.deliver(&values).await {
                    Delivery::Answered(results) => {
                        let mut rest = Vec::new();
                        for item in batch {
                            let id = item.0["event_id"].as_str().unwrap_or("");
                            let Some((_, status)) = results.iter().find(|(r, _)| r == id) else {
                                rest.push(item);
                                continue;
                            };
                            println!("{id}: {status}");
                            match status.as_str() {
                                "duplicate" => report.duplicate += 1,
                                "rejected" => report.rejected += 1,
                                _ => report.accepted += 1,
                            }
                            if let (Some(outbox), Some(kept)) = (&mut outbox, item.1) {
                                outbox.answered(kept);
                            }
                        }
                        break (rest, "the server did not answer for them".to_owned());
                    }
                    Delivery::Refused(status, faults) => {
                        let named: Vec<usize> = faults
                            .iter()
                            .filter_map(|(index, _, _)| *index)
                            .filter(|index| *index < batch.len())
                            .collect();
                        for (index, code, message) in &faults {
                            let id = index
                                .and_then(|i| batch.get(i))
                                .and_then(|(event, _)| event["event_id"].as_str())
                                .unwrap_or("(request)");
                            eprintln!("{id}: rejected ({status} {code}): {message}");
                        }
                        let (refused, rest): (Vec<_>, Vec<_>) = batch
                            .into_iter()
                            .enumerate()
                            .partition(|(i, _)| named.contains(i));
                        report.rejected += refused.len();
                        for (_, item) in &refused {
                            if let (Some(outbox), Some(kept)) = (&mut outbox, item.1) {
                                outbox.answered(kept);
                            }
                        }
                        batch = rest.into_iter().map(|(_, item)| item).collect();
                        if refused.is_empty() || batch.is_empty() {
                            // Nothing named (401, 403, 413 …): the rest was not answered for.
                            let code = faults.first().map_or("", |(_, code, _)| code.as_str());
                            break (batch, format!("refused {status} {code}"));
                        }
                    }
                    Delivery::Unreachable(reason) => break (batch, reason),
                };
            };
            let (rest, reason) = unanswered;
            if let Some(outbox) = &mut outbox {
                outbox.flush()?;
            }
            if rest.is_empty() {
                continue;
            }
            match &outbox {
                Some(outbox) => {
                    eprintln!(
                        "not delivered ({reason}); {} event(s) kept in the outbox {}",
                        rest.len(),
                        outbox.dir().display()
                    );
                }
                None => {
                    report.undelivered += rest.len();
                    eprintln!(
                        "not delivered ({reason}); use --outbox DIR to keep events for later"
                    );
                }
            }
        }
        if let Some(outbox) = &outbox {
            report.queued = outbox.len();
        }
        Ok(report)
    }
}

fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// Reads events from JSON (an object or an array) or NDJSON files; `-` is stdin.
pub fn read_events(files: &[PathBuf]) -> anyhow::Result<Vec<Value>> {
    let mut events = Vec::new();
    for file in files {
        let text = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        } else {
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => events.extend(items),
            Ok(value) => events.push(value),
            Err(_) => {
                for (number, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, line)| !line.trim().is_empty())
                {
                    let value = serde_json::from_str(line).with_context(|| {
                        format!("{} line {}: not JSON", file.display(), number + 1)
                    })?;
                    events.push(value);
                }
            }
        }
    }
    Ok(events)
}

/// Validates locally: the valid events, and a message for each invalid one.
pub fn validate_locally(events: Vec<Value>) -> (Vec<Value>, Vec<String>) {
    let schemas = Schemas::load();
    let mut valid = Vec::new();
    let mut problems = Vec::new();
    for (index, event) in events.into_iter().enumerate() {
        let id = event["event_id"]
            .as_str()
            .map_or(format!("event {index}"), str::to_owned);
        match schemas.parse_value(event.clone(), Origin::Client) {
            Ok(_) => valid.push(event),
            Err(rejection) => {
                let details: Vec<String> = rejection
                    .details
                    .iter()
                    .map(|d| format!("{} {}", d.path.as_deref().unwrap_or(""), d.message))
                    .collect();
                problems.push(format!(
                    "{id}: {} ({}) {}",
                    rejection.code,
                    rejection.message,
                    details.join("; ")
                ));
            }
        }
    }
    (valid, problems)
}

pub fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| {
            value
                .as_ref()
                .map(|value| format!("{name}={}", encode(value)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string()
}

pub fn review_request(as_of: Option<&str>, country: Option<&str>) -> Value {
    let mut body = json!({});
    if let Some(as_of) = as_of {
        body["as_of"] = json!(as_of);
    }
    if let Some(country) = country {
        body["country"] = json!(country);
    }
    body
}
