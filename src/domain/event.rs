//! Events as a wire format (CONTRACT.md §2): the submitted envelope, the stored event, and the
//! typed reading of an envelope that the rules and the fold work on. Events change only with a
//! new `schema_version`; API DTOs are separate types.

use super::ids::{ActionId, Country, EventId, OutcomeId};
use super::tracks::{parse_track_event_type, Stage};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One serialized event is at most this large (CONTRACT.md §2.1).
pub const EVENT_BYTES_MAX: usize = 64 * 1024;
/// The service's own events (reviews) are held to this instead: one message of NATS's default
/// `max_payload`. A review larger than that is written in parts (`review.part`).
pub const SERVICE_EVENT_BYTES_MAX: usize = 1024 * 1024;

/// The envelope as submitted. Defaults (`schema_version` 1, `lang` "en") are filled in, so the
/// same content written with or without them is the same event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default = "default_schema_version")]
    pub schema_version: u32,
    pub action_id: ActionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_id: Option<OutcomeId>,
    pub country: Country,
    pub occurred_on: NaiveDate,
    pub reported_by: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_timestamp"
    )]
    pub reported_at: Option<DateTime<Utc>>,
    #[serde(default = "default_lang")]
    pub lang: String,
    pub data: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
}

fn default_schema_version() -> u32 {
    1
}

fn default_lang() -> String {
    "en".to_owned()
}

/// What the log holds: the envelope plus what the service assigned (CONTRACT.md §2.2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub seq: u64,
    #[serde(with = "timestamp")]
    pub recorded_at: DateTime<Utc>,
    pub stream_seq: Option<u64>,
    pub submitted_by: Option<String>,
}

/// The service-assigned fields, as read back from a stored (or exported) event.
#[derive(Deserialize)]
struct Assigned {
    seq: u64,
    #[serde(with = "timestamp")]
    recorded_at: DateTime<Utc>,
    stream_seq: Option<u64>,
    submitted_by: Option<String>,
}

const ASSIGNED_FIELDS: [&str; 4] = ["seq", "recorded_at", "stream_seq", "submitted_by"];

impl StoredEvent {
    pub fn to_json_bytes(&self) -> Vec<u8> {
        stored_json(
            &canonical_json(&self.envelope),
            self.seq,
            &self.recorded_at,
            self.stream_seq,
            self.submitted_by.as_deref(),
        )
    }

    /// Splits a stored event's JSON into its envelope and assigned fields.
    pub fn from_value(mut value: Value) -> Result<StoredEvent, String> {
        let object = value
            .as_object_mut()
            .ok_or("a stored event is a JSON object")?;
        let mut assigned = Map::new();
        for field in ASSIGNED_FIELDS {
            assigned.insert(
                field.to_owned(),
                object.remove(field).unwrap_or(Value::Null),
            );
        }
        let assigned: Assigned =
            serde_json::from_value(Value::Object(assigned)).map_err(|e| e.to_string())?;
        let envelope: Envelope = serde_json::from_value(value).map_err(|e| e.to_string())?;
        Ok(StoredEvent {
            envelope,
            seq: assigned.seq,
            recorded_at: assigned.recorded_at,
            stream_seq: assigned.stream_seq,
            submitted_by: assigned.submitted_by,
        })
    }

    pub fn from_json_bytes(bytes: &[u8]) -> Result<StoredEvent, String> {
        Self::from_value(serde_json::from_slice(bytes).map_err(|e| e.to_string())?)
    }
}

/// A date the client means to reach: `{stage, by}`, stage not yet resolved against a track.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ExpectedInput {
    pub stage: String,
    pub by: NaiveDate,
}

/// The typed reading of an envelope: what the rules and the fold need, nothing more.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    Registered {
        title: String,
    },
    Closed,
    Track {
        outcome: OutcomeId,
        stage: Stage,
        expected: Option<ExpectedInput>,
        title: Option<String>,
    },
    Verified {
        outcome: OutcomeId,
    },
    Disputed {
        outcome: OutcomeId,
    },
    ExpectationRevised {
        outcome: OutcomeId,
        expected: ExpectedInput,
    },
    Retracted {
        target: EventId,
    },
    ReviewCompleted,
    /// A part of a review report too large for one message (CONTRACT.md §11).
    ReviewPart,
}

/// Why an envelope that passed the schema still cannot be read as a known event.
#[derive(Debug)]
pub enum KindError {
    UnknownType,
    Shape(String),
}

impl EventKind {
    /// A review's event, of the service's pseudo-Action `REVIEW` and no Action's record.
    pub fn is_review(&self) -> bool {
        matches!(self, EventKind::ReviewCompleted | EventKind::ReviewPart)
    }

    /// Is `event_type` one of the types of CONTRACT.md §2.3/2.4?
    pub fn is_known_type(event_type: &str) -> bool {
        matches!(
            event_type,
            "action.registered"
                | "action.closed"
                | "outcome.verified"
                | "outcome.disputed"
                | "outcome.expectation_revised"
                | "event.retracted"
                | "review.completed"
                | "review.part"
        ) || parse_track_event_type(event_type).is_some()
    }

    pub fn read(envelope: &Envelope) -> Result<EventKind, KindError> {
        let field = |name: &str| envelope.data.get(name);
        let text = |name: &str| field(name).and_then(Value::as_str).map(str::to_owned);
        EventKind::from_fields(
            &envelope.event_type,
            envelope.outcome_id.clone(),
            text("title"),
            text("target_event_id").and_then(|id| id.parse().ok()),
            || {
                field("expected")
                    .map(|value| {
                        serde_json::from_value(value.clone())
                            .map_err(|e| KindError::Shape(e.to_string()))
                    })
                    .transpose()
            },
        )
    }

    /// The kind from the fields that decide it: the one reading of an event's type and data,
    /// for a whole envelope (`read`) and for a stored event's few fields (rebuilds). `expected`
    /// is read only by the kinds that carry one.
    pub fn from_fields(
        event_type: &str,
        outcome_id: Option<OutcomeId>,
        title: Option<String>,
        target_event_id: Option<EventId>,
        expected: impl FnOnce() -> Result<Option<ExpectedInput>, KindError>,
    ) -> Result<EventKind, KindError> {
        let outcome =
            || outcome_id.ok_or_else(|| KindError::Shape("outcome_id is required".into()));
        Ok(match event_type {
            "action.registered" => EventKind::Registered {
                title: title.ok_or_else(|| KindError::Shape("data.title is required".into()))?,
            },
            "action.closed" => EventKind::Closed,
            "outcome.verified" => EventKind::Verified {
                outcome: outcome()?,
            },
            "outcome.disputed" => EventKind::Disputed {
                outcome: outcome()?,
            },
            "outcome.expectation_revised" => EventKind::ExpectationRevised {
                outcome: outcome()?,
                expected: expected()?
                    .ok_or_else(|| KindError::Shape("data.expected is required".into()))?,
            },
            "event.retracted" => EventKind::Retracted {
                target: target_event_id.ok_or_else(|| {
                    KindError::Shape("data.target_event_id must be a UUID".into())
                })?,
            },
            "review.completed" => EventKind::ReviewCompleted,
            "review.part" => EventKind::ReviewPart,
            other => match parse_track_event_type(other) {
                Some(stage) => EventKind::Track {
                    outcome: outcome()?,
                    stage,
                    expected: expected()?,
                    title,
                },
                None => return Err(KindError::UnknownType),
            },
        })
    }
}

/// The envelope's canonical JSON: defaults filled, `data` keys sorted.
pub fn canonical_json(envelope: &Envelope) -> Vec<u8> {
    serde_json::to_vec(envelope).expect("an envelope always serializes")
}

/// The hash that decides "same content" for an `event_id` seen again (CONTRACT.md §2.5).
pub fn content_hash(canonical: &[u8]) -> [u8; 32] {
    Sha256::digest(canonical).into()
}

/// A stored event's JSON: the canonical envelope with the assigned fields after it (the same
/// bytes `serde` would write for `StoredEvent`, without serializing the envelope twice).
pub fn stored_json(
    canonical: &[u8],
    seq: u64,
    recorded_at: &DateTime<Utc>,
    stream_seq: Option<u64>,
    submitted_by: Option<&str>,
) -> Vec<u8> {
    assert_eq!(
        canonical.last(),
        Some(&b'}'),
        "a canonical envelope is a JSON object"
    );
    let mut json = Vec::with_capacity(canonical.len() + 128);
    json.extend_from_slice(&canonical[..canonical.len() - 1]);
    json.extend_from_slice(b",\"seq\":");
    json.extend_from_slice(seq.to_string().as_bytes());
    json.extend_from_slice(b",\"recorded_at\":\"");
    json.extend_from_slice(format_timestamp(recorded_at).as_bytes());
    json.extend_from_slice(b"\",\"stream_seq\":");
    match stream_seq {
        Some(stream_seq) => json.extend_from_slice(stream_seq.to_string().as_bytes()),
        None => json.extend_from_slice(b"null"),
    }
    json.extend_from_slice(b",\"submitted_by\":");
    serde_json::to_writer(&mut json, &submitted_by).expect("a string serializes");
    json.push(b'}');
    json
}

pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Timestamps are written in UTC with microseconds, read from any RFC 3339 offset.
pub mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_timestamp(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

pub mod opt_timestamp {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::timestamp::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::timestamp")] DateTime<Utc>);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(at)| at))
    }
}
