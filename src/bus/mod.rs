//! The bus seam: where accepted events go before the writer appends them. The embedded bus
//! hands them to the writer in-process (durable once the writer has flushed); the NATS bus
//! publishes them to JetStream (durable once PubAcked) and a consumer feeds the writer.

pub mod nats;

use crate::domain::validate::Origin;
use crate::domain::validate::{Parsed, Rejection};
use crate::ingest::{Incoming, ItemOutcome, Payload, Source, WriteError, Writer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Accepted,
    Duplicate,
    /// (NATS) the bus had this `event_id` already, and the log holds other content for it (or
    /// none): this content was not stored.
    Conflict,
}

/// What the bus says of one published event.
#[derive(Clone, Debug)]
pub struct Published {
    pub event_id: crate::domain::ids::EventId,
    pub status: Status,
    pub stream_seq: Option<u64>,
    /// Known at once on the embedded bus; on NATS only after the consumer applied it.
    pub seq: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Some events are invalid against the log as it stands; nothing was published.
    #[error("rejected: {}", describe(.0))]
    Rejected(Vec<(usize, Rejection)>),
    /// The bus did not durably accept the events; nothing was stored, retry with the same ids.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// The rejections of a body, for a log line: `event 0: payload_too_large (…)`.
fn describe(failures: &[(usize, Rejection)]) -> String {
    let described: Vec<String> = failures
        .iter()
        .map(|(index, rejection)| {
            format!("event {index}: {} ({})", rejection.code, rejection.message)
        })
        .collect();
    described.join("; ")
}

impl From<WriteError> for BusError {
    fn from(error: WriteError) -> BusError {
        match error {
            WriteError::Rejected(failures) => BusError::Rejected(failures),
            WriteError::Store(message) => BusError::Internal(message),
            WriteError::Unavailable(message) => BusError::Unavailable(message),
            WriteError::Stopped => BusError::Unavailable("the writer has stopped".into()),
        }
    }
}

pub enum Bus {
    Embedded(Writer),
    Nats(Box<nats::NatsBus>),
}

impl Bus {
    /// Publishes a validated body, all or nothing.
    pub async fn publish(
        &self,
        events: Vec<Parsed>,
        origin: Origin,
        submitted_by: Option<String>,
    ) -> Result<Vec<Published>, BusError> {
        // Below the free-space reserve (or after a failed write) nothing is taken, on either
        // bus: an event NATS accepted now could not be applied until space is freed.
        if let Some(down) = self.writer().writes_down() {
            return Err(BusError::Unavailable(down.to_string()));
        }
        match self {
            Bus::Embedded(writer) => {
                let ids: Vec<_> = events
                    .iter()
                    .map(|parsed| parsed.envelope.event_id)
                    .collect();
                let items = events
                    .into_iter()
                    .map(|parsed| Incoming {
                        payload: Payload::Parsed(Box::new(parsed)),
                        origin,
                        source: if origin == Origin::Service {
                            Source::Service
                        } else {
                            Source::Http
                        },
                        submitted_by: submitted_by.clone(),
                    })
                    .collect();
                let outcomes = writer.submit(items, true).await?;
                Ok(ids
                    .into_iter()
                    .zip(outcomes)
                    .map(|(event_id, outcome)| match outcome {
                        ItemOutcome::Applied { seq } => Published {
                            event_id,
                            status: Status::Accepted,
                            stream_seq: None,
                            seq: Some(seq),
                        },
                        ItemOutcome::Duplicate { seq } => Published {
                            event_id,
                            status: Status::Duplicate,
                            stream_seq: None,
                            seq: Some(seq),
                        },
                        ItemOutcome::Rejected(_) => unreachable!(
                            "an all-or-nothing submission reports rejections as an error"
                        ),
                    })
                    .collect())
            }
            Bus::Nats(bus) => bus.publish(events, submitted_by).await,
        }
    }

    fn writer(&self) -> &Writer {
        match self {
            Bus::Embedded(writer) => writer,
            Bus::Nats(bus) => bus.writer(),
        }
    }

    /// The largest event one message carries: on NATS the server's `max_payload` (1 MiB by
    /// default), at most the service's own limit.
    pub fn message_bytes_max(&self) -> usize {
        let service_max = crate::domain::event::SERVICE_EVENT_BYTES_MAX;
        match self {
            Bus::Embedded(_) => service_max,
            Bus::Nats(bus) => match bus.max_payload() {
                0 => service_max,
                max_payload => max_payload.min(service_max),
            },
        }
    }

    pub fn is_ready(&self) -> bool {
        match self {
            Bus::Embedded(_) => true,
            Bus::Nats(bus) => bus.is_ready(),
        }
    }
}
