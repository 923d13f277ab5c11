//! The only module that knows NATS (CONTRACT.md §6): the stream, publishing with `Nats-Msg-Id`,
//! and the consumer that feeds the writer from the sled checkpoint + 1, in stream order.

use super::{BusError, Published, Status};
use crate::config::NatsConfig;
use crate::domain::ids::{ActionId, EventId, REVIEW_ACTION};
use crate::domain::validate::Origin;
use crate::domain::validate::Parsed;
use crate::ingest::{Incoming, Payload, Source, Submission, Writer};
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy, stream};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages handed to the writer in one submission at most.
pub const CONSUME_BATCH_MAX: usize = 2048;
/// Backoff between attempts to (re)start the consumer.
const RETRY_DELAY_MS_MAX: u64 = 2_000;
pub const HEADER_SUBMITTED_BY: &str = "Impact-Submitted-By";

pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    config: NatsConfig,
    consuming: Arc<AtomicBool>,
    writer: Writer,
    /// The newest stream sequence this instance published for an Action and the consumer has
    /// not applied yet: what a check before the next publish for it must wait for.
    in_flight: Mutex<HashMap<ActionId, u64>>,
}

/// Past this many Actions in flight, the applied ones are forgotten.
const IN_FLIGHT_PRUNE_AT: usize = 4096;

pub fn subject_for(parsed: &Parsed) -> String {
    let envelope = &parsed.envelope;
    if envelope.action_id.as_str() == REVIEW_ACTION {
        let review_id = envelope
            .data
            .get("review_id")
            .and_then(|id| id.as_str())
            .unwrap_or("unnamed");
        format!("impact.reviews.{review_id}")
    } else {
        // Not `impact.events.…`: that is the field offices' own, held to their rules (§6.2).
        format!(
            "impact.submitted.{}.{}",
            envelope.country, envelope.action_id
        )
    }
}

impl NatsBus {
    /// Connects (retrying in the background if the server is not up yet) and starts consuming.
    pub async fn start(config: NatsConfig, writer: Writer) -> Result<NatsBus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(RETRY_DELAY_MS_MAX))
            })
            .event_callback(|event| async move { tracing::info!(%event, "nats") })
            .connect(config.url.as_str())
            .await
            .map_err(|e| BusError::Unavailable(format!("connect to {}: {e}", config.url)))?;
        let jetstream = jetstream::new(client.clone());
        // The stream exists before the first publish when the broker is up; when it is not, the
        // consumer creates it once the broker is back.
        match tokio::time::timeout(Duration::from_secs(5), ensure_stream(&jetstream, &config)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the stream is not there yet"),
            Err(_) => {
                tracing::warn!(url = %config.url, "NATS is not reachable yet; the service starts unready")
            }
        }
        let consuming = Arc::new(AtomicBool::new(false));
        tokio::spawn(consume(
            jetstream.clone(),
            config.clone(),
            writer.clone(),
            consuming.clone(),
        ));
        Ok(NatsBus {
            client,
            jetstream,
            config,
            consuming,
            writer,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// Waits until the consumer has applied what this instance published for `actions`, so
    /// that a check against the log sees a client's own accepted events (read-your-writes
    /// without `wait`). Bounded like `?wait=true`.
    pub async fn settle<'a>(
        &self,
        actions: impl IntoIterator<Item = &'a ActionId>,
    ) -> Result<(), BusError> {
        let newest = {
            let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            actions
                .into_iter()
                .filter_map(|action_id| in_flight.get(action_id).copied())
                .max()
        };
        match newest {
            Some(stream_seq) if stream_seq > self.writer.position().checkpoint => {
                self.applied(stream_seq).await
            }
            _ => Ok(()),
        }
    }

    /// Waits until the consumer has applied the stream up to `stream_seq`.
    async fn applied(&self, stream_seq: u64) -> Result<(), BusError> {
        let timeout = Duration::from_millis(crate::app::APPLY_WAIT_MS_MAX);
        let reached = self
            .writer
            .wait_for(|position| position.checkpoint >= stream_seq);
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(BusError::Unavailable(error.to_string())),
            Err(_) => Err(BusError::Unavailable(format!(
                "the stream's message {stream_seq} was not applied within {} ms; retry",
                timeout.as_millis()
            ))),
        }
    }

    fn note_in_flight(&self, action_id: &ActionId, stream_seq: u64) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.len() >= IN_FLIGHT_PRUNE_AT {
            let applied = self.writer.position().checkpoint;
            in_flight.retain(|_, seq| *seq > applied);
        }
        let newest = in_flight.entry(action_id.clone()).or_default();
        *newest = (*newest).max(stream_seq);
    }

    /// JetStream answered `duplicate` for a `Nats-Msg-Id` it saw in its window: that says only
    /// that a message with this `event_id` came before, not that it had this content. Once the
    /// consumer has applied that message, the stored event decides (CONTRACT.md §11).
    async fn confirm_duplicate(
        &self,
        event_id: &EventId,
        hash: &[u8; 32],
        first_stream_seq: u64,
    ) -> Result<(Status, Option<u64>), BusError> {
        self.applied(first_stream_seq).await?;
        let stored = self
            .writer
            .store()
            .event_index(event_id)
            .map_err(|e| BusError::Internal(e.to_string()))?;
        Ok(match stored {
            Some((seq, stored_hash)) if stored_hash == *hash => (Status::Duplicate, Some(seq)),
            _ => (Status::Conflict, None),
        })
    }

    /// The server's `max_payload` (0 before the first connection).
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    pub fn is_ready(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
            && self.consuming.load(Ordering::Relaxed)
    }

    /// Publishes every event, then awaits every PubAck; `Ok` only when all are durable.
    pub async fn publish(
        &self,
        events: Vec<Parsed>,
        submitted_by: Option<String>,
    ) -> Result<Vec<Published>, BusError> {
        let timeout = Duration::from_millis(self.config.publish_timeout_ms);
        let work = async {
            let mut pending = Vec::with_capacity(events.len());
            for parsed in &events {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", parsed.envelope.event_id.to_string().as_str());
                if let Some(name) = &submitted_by {
                    headers.insert(HEADER_SUBMITTED_BY, name.as_str());
                }
                let payload = serde_json::to_vec(&parsed.envelope).expect("an envelope serializes");
                let ack = self
                    .jetstream
                    .publish_with_headers(subject_for(parsed), headers, payload.into())
                    .await
                    .map_err(|e| BusError::Unavailable(format!("publish: {e}")))?;
                pending.push(ack);
            }
            let mut acks = Vec::with_capacity(pending.len());
            for ack in pending {
                acks.push(
                    ack.await
                        .map_err(|e| BusError::Unavailable(format!("no PubAck: {e}")))?,
                );
            }
            Ok::<_, BusError>(acks)
        };
        let acks = match tokio::time::timeout(timeout, work).await {
            Ok(acks) => acks?,
            Err(_) => {
                return Err(BusError::Unavailable(format!(
                    "JetStream did not acknowledge within {} ms",
                    timeout.as_millis()
                )))
            }
        };
        let mut published = Vec::with_capacity(acks.len());
        for (parsed, ack) in events.iter().zip(acks) {
            let event_id = parsed.envelope.event_id;
            let (status, seq) = if ack.duplicate {
                self.confirm_duplicate(&event_id, &parsed.hash, ack.sequence)
                    .await?
            } else {
                self.note_in_flight(&parsed.envelope.action_id, ack.sequence);
                (Status::Accepted, None)
            };
            published.push(Published {
                event_id,
                status,
                stream_seq: Some(ack.sequence),
                seq,
            });
        }
        Ok(published)
    }
}

/// The stream's subjects (CONTRACT.md §6.2).
const STREAM_SUBJECTS: [&str; 3] = ["impact.events.>", "impact.submitted.>", "impact.reviews.>"];

/// The stream, created if absent; one found with fewer subjects gets the missing ones added.
async fn ensure_stream(
    jetstream: &jetstream::Context,
    config: &NatsConfig,
) -> Result<stream::Stream, String> {
    let mut stream = jetstream
        .get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: STREAM_SUBJECTS.map(String::from).to_vec(),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: config.replicas,
            duplicate_window: Duration::from_secs(config.duplicate_window_secs),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {}: {e}", config.stream))?;
    let mut found = stream
        .info()
        .await
        .map_err(|e| format!("stream {}: {e}", config.stream))?
        .config
        .clone();
    let missing: Vec<String> = STREAM_SUBJECTS
        .iter()
        .filter(|subject| !found.subjects.iter().any(|s| s == *subject))
        .map(|subject| subject.to_string())
        .collect();
    if !missing.is_empty() {
        tracing::info!(stream = %config.stream, ?missing, "adding the stream's missing subjects");
        found.subjects.extend(missing);
        jetstream
            .update_stream(found)
            .await
            .map_err(|e| format!("stream {}: add subjects: {e}", config.stream))?;
        stream = jetstream
            .get_stream(&config.stream)
            .await
            .map_err(|e| format!("stream {}: {e}", config.stream))?;
    }
    Ok(stream)
}

/// Feeds the writer from the stream, resuming after the last sequence handed over. Runs until
/// the writer stops; any NATS error restarts the consumer from where it was.
async fn consume(
    jetstream: jetstream::Context,
    config: NatsConfig,
    writer: Writer,
    consuming: Arc<AtomicBool>,
) {
    let mut next = writer.position().checkpoint + 1;
    let mut attempt: u64 = 0;
    loop {
        match consume_from(&jetstream, &config, &writer, &consuming, &mut next).await {
            Ok(()) => return,
            Err(error) => {
                consuming.store(false, Ordering::Relaxed);
                attempt += 1;
                tracing::warn!(%error, next, "consumer stopped; restarting");
                tokio::time::sleep(Duration::from_millis(
                    (attempt * 100).min(RETRY_DELAY_MS_MAX),
                ))
                .await;
            }
        }
    }
}

async fn consume_from(
    jetstream: &jetstream::Context,
    config: &NatsConfig,
    writer: &Writer,
    consuming: &AtomicBool,
    next: &mut u64,
) -> Result<(), String> {
    let stream = ensure_stream(jetstream, config).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: *next,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create consumer: {e}"))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| format!("consume: {e}"))?;
    consuming.store(true, Ordering::Relaxed);
    tracing::info!(start_sequence = *next, "consuming the stream");
    let mut chunks = messages.ready_chunks(CONSUME_BATCH_MAX);
    while let Some(chunk) = chunks.next().await {
        let mut items = Vec::with_capacity(chunk.len());
        let mut last = None;
        for message in chunk {
            let message = message.map_err(|e| format!("message: {e}"))?;
            let stream_seq = message
                .info()
                .map_err(|e| format!("message info: {e}"))?
                .stream_sequence;
            if stream_seq < *next {
                continue; // Redelivered after a consumer restart: already handed over.
            }
            let subject = message.subject.to_string();
            // Only the service's own user may publish on these subjects: the header is
            // believed there alone (§6.2); a field office's message has no submitter.
            let trusted =
                subject.starts_with("impact.submitted.") || subject.starts_with("impact.reviews.");
            let submitted_by = message
                .headers
                .as_ref()
                .filter(|_| trusted)
                .and_then(|headers| headers.get(HEADER_SUBMITTED_BY))
                .map(|value| value.as_str().to_owned());
            let origin = if subject.starts_with("impact.reviews.") {
                Origin::Service
            } else {
                Origin::Client
            };
            items.push(Incoming {
                payload: Payload::Raw(message.payload.clone()),
                origin,
                source: Source::Nats {
                    subject,
                    stream_seq,
                },
                submitted_by,
            });
            last = Some(stream_seq);
        }
        let Some(last) = last else { continue };
        // The stateless checks run here, beside the writer, not on its thread.
        let schemas = writer.schemas().clone();
        let items = tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|item| item.prepare(&schemas))
                .collect()
        })
        .await
        .map_err(|e| format!("prepare: {e}"))?;
        let submission = Submission {
            items,
            all_or_nothing: false,
            checkpoint: Some(last),
            reply: None,
        };
        if writer.send(submission).await.is_err() {
            return Ok(());
        }
        *next = last + 1;
    }
    Err("the message stream ended".into())
}
