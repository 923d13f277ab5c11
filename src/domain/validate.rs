//! Stateless validation (CONTRACT.md §2.5): bytes → a typed event, or a `Rejection` with a code.
//! The JSON Schemas in `schemas/` are embedded here and are the single source of truth for shape;
//! this module adds only what a schema cannot say (the type table, who may write what).

use super::event::{
    canonical_json, content_hash, Envelope, EventKind, KindError, EVENT_BYTES_MAX,
    SERVICE_EVENT_BYTES_MAX,
};
use jsonschema::error::ValidationErrorKind;
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// Every schema the service validates with, by name, as served on `GET /v1/schemas`.
pub const SCHEMA_DOCUMENTS: [(&str, &str); 1] =
    [("event.v1", include_str!("../../schemas/event.v1.json"))];

/// At most this many schema faults are reported for one event.
const SCHEMA_DETAILS_MAX: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    MalformedJson,
    PayloadTooLarge,
    SchemaViolation,
    UnknownType,
    ForbiddenType,
    EventIdConflict,
    TrackMismatch,
    OutcomeUnknown,
    ExpectedStageInvalid,
    CountryMismatch,
    RetractionTargetUnknown,
    OccurredInFuture,
    SubjectMismatch,
}

impl RejectionCode {
    pub const ALL: [RejectionCode; 13] = [
        RejectionCode::MalformedJson,
        RejectionCode::PayloadTooLarge,
        RejectionCode::SchemaViolation,
        RejectionCode::UnknownType,
        RejectionCode::ForbiddenType,
        RejectionCode::EventIdConflict,
        RejectionCode::TrackMismatch,
        RejectionCode::OutcomeUnknown,
        RejectionCode::ExpectedStageInvalid,
        RejectionCode::CountryMismatch,
        RejectionCode::RetractionTargetUnknown,
        RejectionCode::OccurredInFuture,
        RejectionCode::SubjectMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::MalformedJson => "malformed_json",
            RejectionCode::PayloadTooLarge => "payload_too_large",
            RejectionCode::SchemaViolation => "schema_violation",
            RejectionCode::UnknownType => "unknown_type",
            RejectionCode::ForbiddenType => "forbidden_type",
            RejectionCode::EventIdConflict => "event_id_conflict",
            RejectionCode::TrackMismatch => "track_mismatch",
            RejectionCode::OutcomeUnknown => "outcome_unknown",
            RejectionCode::ExpectedStageInvalid => "expected_stage_invalid",
            RejectionCode::CountryMismatch => "country_mismatch",
            RejectionCode::RetractionTargetUnknown => "retraction_target_unknown",
            RejectionCode::OccurredInFuture => "occurred_in_future",
            RejectionCode::SubjectMismatch => "subject_mismatch",
        }
    }
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fault inside a rejected event: where (a JSON pointer) and what.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

/// Why an event was not applied. Rejections are values, never panics: the world sends bad input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectionCode,
    pub message: String,
    pub details: Vec<Detail>,
}

impl Rejection {
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn at(code: RejectionCode, path: &str, message: impl Into<String>) -> Rejection {
        let message = message.into();
        Rejection {
            code,
            details: vec![Detail {
                path: Some(path.to_owned()),
                message: message.clone(),
            }],
            message,
        }
    }
}

/// Who wrote an event decides which types it may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A field office or evaluator: `review.completed` is forbidden.
    Client,
    /// The service itself (reviews) or an import of its own export.
    Service,
}

impl Origin {
    /// How large one event may be: a client's 64 KiB, or one message for the service's own.
    pub fn event_bytes_max(self) -> usize {
        match self {
            Origin::Client => EVENT_BYTES_MAX,
            Origin::Service => SERVICE_EVENT_BYTES_MAX,
        }
    }
}

/// An event that passed every stateless check.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub envelope: Envelope,
    pub kind: EventKind,
    /// The envelope's canonical JSON, written once and reused for the hash and the log.
    pub canonical: Vec<u8>,
    pub hash: [u8; 32],
}

/// The compiled schemas. Build once, share everywhere.
pub struct Schemas {
    event: jsonschema::Validator,
}

impl Schemas {
    pub fn load() -> Schemas {
        let document: Value =
            serde_json::from_str(SCHEMA_DOCUMENTS[0].1).expect("the embedded schema is JSON");
        let event = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&document)
            .expect("the embedded schema compiles");
        Schemas { event }
    }

    /// Bytes off the wire → a typed event.
    pub fn parse_bytes(&self, raw: &[u8], origin: Origin) -> Result<Parsed, Rejection> {
        if raw.len() > origin.event_bytes_max() {
            return Err(too_large(raw.len(), origin));
        }
        let text = std::str::from_utf8(raw)
            .map_err(|e| Rejection::new(RejectionCode::MalformedJson, format!("not UTF-8: {e}")))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Rejection::new(RejectionCode::MalformedJson, format!("not JSON: {e}")))?;
        self.parse_value_unsized(value, origin)
    }

    /// One element of a JSON body: its size is measured as it serializes.
    pub fn parse_value(&self, value: Value, origin: Origin) -> Result<Parsed, Rejection> {
        let size = serialized_len(&value);
        if size > origin.event_bytes_max() {
            return Err(too_large(size, origin));
        }
        self.parse_value_unsized(value, origin)
    }

    fn parse_value_unsized(&self, value: Value, origin: Origin) -> Result<Parsed, Rejection> {
        let Value::Object(object) = &value else {
            return Err(Rejection::new(
                RejectionCode::MalformedJson,
                "an event is a JSON object",
            ));
        };
        if let Some(Value::String(event_type)) = object.get("type") {
            if !EventKind::is_known_type(event_type) {
                return Err(Rejection::at(
                    RejectionCode::UnknownType,
                    "/type",
                    format!("unknown event type {event_type:?}"),
                ));
            }
            if event_type.starts_with("review.") && origin == Origin::Client {
                return Err(Rejection::at(
                    RejectionCode::ForbiddenType,
                    "/type",
                    format!("{event_type} is written by the service only"),
                ));
            }
        }
        // The reviews' own pseudo-Action: no client event may name it (CONTRACT.md §11).
        if origin == Origin::Client
            && object.get("action_id").and_then(Value::as_str)
                == Some(crate::domain::ids::REVIEW_ACTION)
        {
            return Err(Rejection::at(
                RejectionCode::SchemaViolation,
                "/action_id",
                format!(
                    "action_id {:?} is reserved for the service's reviews",
                    crate::domain::ids::REVIEW_ACTION
                ),
            ));
        }
        check_no_control_characters(&value)?;
        self.check_schema(&value)?;
        check_review_shape(&value)?;
        let envelope: Envelope = serde_json::from_value(value)
            .map_err(|e| Rejection::new(RejectionCode::SchemaViolation, e.to_string()))?;
        let kind = EventKind::read(&envelope).map_err(|error| match error {
            KindError::UnknownType => {
                Rejection::at(RejectionCode::UnknownType, "/type", "unknown event type")
            }
            KindError::Shape(message) => Rejection::new(RejectionCode::SchemaViolation, message),
        })?;
        let canonical = canonical_json(&envelope);
        let hash = content_hash(&canonical);
        Ok(Parsed {
            envelope,
            kind,
            canonical,
            hash,
        })
    }

    fn check_schema(&self, value: &Value) -> Result<(), Rejection> {
        if self.event.is_valid(value) {
            return Ok(());
        }
        let mut details: Vec<Detail> = self
            .event
            .iter_errors(value)
            .map(|error| Detail {
                path: Some(fault_pointer(&error)),
                message: error.to_string(),
            })
            .collect();
        details.sort_by(|a, b| a.path.cmp(&b.path));
        details.dedup();
        details.truncate(SCHEMA_DETAILS_MAX);
        let message = match details.first() {
            Some(Detail {
                path: Some(path),
                message,
            }) => format!("{}: {message}", display_pointer(path)),
            _ => "the event does not match the schema".to_owned(),
        };
        Err(Rejection {
            code: RejectionCode::SchemaViolation,
            message,
            details,
        })
    }
}

/// The length of `value` serialized as compact JSON, counted without writing it anywhere.
fn serialized_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// A control character that no text may hold: U+0000 to U+001F but tab, line feed and
/// carriage return, and U+007F. `TEXT_PATTERN` says the same to the API description.
pub fn is_control(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'
}

/// `is_control` as a JSON Schema pattern (the API description gives it to every free text).
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F]*$";

/// No text of an event holds a control character (U+0000 to U+001F but tab, line feed and
/// carriage return, and U+007F), in a value or a key: such text cannot be shown, exported to
/// XML or read back safely (CONTRACT.md §11).
fn check_no_control_characters(value: &Value) -> Result<(), Rejection> {
    let Some((path, c)) = control_character(value) else {
        return Ok(());
    };
    Err(Rejection::at(
        RejectionCode::SchemaViolation,
        &path,
        format!(
            "{}: a control character (U+{:04X}) is not allowed in text",
            display_pointer(&path),
            c as u32
        ),
    ))
}

/// The first control character in `value`, and the JSON pointer to the text that holds it.
/// The pointer is built only for a text that has one: every event passes here.
fn control_character(value: &Value) -> Option<(String, char)> {
    // A control character is one byte of UTF-8, never part of another character's bytes.
    let first = |text: &str| text.bytes().map(char::from).find(|c| is_control(*c));
    let pointer = |name: &str| format!("/{}", name.replace('~', "~0").replace('/', "~1"));
    match value {
        Value::String(text) => first(text).map(|c| (String::new(), c)),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            control_character(item).map(|(path, c)| (format!("/{index}{path}"), c))
        }),
        Value::Object(fields) => fields.iter().find_map(|(name, item)| {
            if let Some(c) = first(name) {
                return Some((pointer(name), c));
            }
            control_character(item).map(|(path, c)| (format!("{}{path}", pointer(name)), c))
        }),
        _ => None,
    }
}

/// A review's report (or part) must be one the service can read back: the schema checks its
/// envelope and a few fields; this reads it whole, so a forged or malformed review can never
/// make `/v1/reviews` fail.
fn check_review_shape(value: &Value) -> Result<(), Rejection> {
    use serde::Deserialize;
    let data = value.get("data").unwrap_or(&Value::Null);
    let read = match value.get("type").and_then(Value::as_str) {
        Some("review.completed") => super::review::ReviewReport::deserialize(data).map(drop),
        Some("review.part") => super::review::ReviewPart::deserialize(data).map(drop),
        _ => return Ok(()),
    };
    read.map_err(|e| {
        Rejection::at(
            RejectionCode::SchemaViolation,
            "/data",
            format!("not a review report the service can read: {e}"),
        )
    })
}

fn too_large(size: usize, origin: Origin) -> Rejection {
    Rejection::new(
        RejectionCode::PayloadTooLarge,
        format!(
            "an event is at most {} bytes, this one is {size}",
            origin.event_bytes_max()
        ),
    )
}

fn display_pointer(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// The JSON pointer of the fault itself: for a missing or an extra property, the property's own
/// path rather than its parent's.
fn fault_pointer(error: &jsonschema::ValidationError<'_>) -> String {
    let base = error.instance_path().as_str().to_owned();
    let child = match error.kind() {
        ValidationErrorKind::Required { property } => property.as_str().map(str::to_owned),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected.first().cloned(),
        _ => None,
    };
    match child {
        Some(name) => format!("{base}/{}", name.replace('~', "~0").replace('/', "~1")),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_pattern_refuses_exactly_the_control_characters() {
        let schema = serde_json::json!({"type": "string", "pattern": TEXT_PATTERN});
        let validator = jsonschema::validator_for(&schema).unwrap();
        for code in 0u32..0x100 {
            let c = char::from_u32(code).unwrap();
            let text = format!("a{c}b");
            assert_eq!(
                validator.is_valid(&Value::String(text)),
                !is_control(c),
                "U+{code:04X}"
            );
        }
    }
}
