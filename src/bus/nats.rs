//! The only module that knows NATS (CONTRACT.md §6): the stream, publishing with `Nats-Msg-Id`,
//! and the consumer that feeds the writer from the sled checkpoint + 1, in stream order.

use super::{BusError, Published, Status};
use crate::config::{NatsAuth, NatsConfig};
use crate::domain::ids::{ActionId, EventId, REVIEW_ACTION};
use crate::domain::validate::Origin;
use crate::domain::validate::Parsed;
use crate::ingest::{Incoming, Payload, Source, Submission, Writer};
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy, stream};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    consumer: Arc<ConsumerState>,
    writer: Writer,
    /// The newest stream sequence this instance published for an Action and the consumer has
    /// not applied yet: what a check before the next publish for it must wait for.
    in_flight: Mutex<HashMap<ActionId, u64>>,
    refusals: Arc<Refusals>,
}

/// The permissions violations the server reports on the connection, for the publish each
/// explains.
#[derive(Default)]
struct Refusals {
    /// The latest, and when it came.
    last: Mutex<Option<(std::time::Instant, String)>>,
    notify: tokio::sync::Notify,
}

/// What the consumer is doing, for `/readyz` and `/metrics` (CONTRACT.md §6.3).
#[derive(Default)]
struct ConsumerState {
    consuming: AtomicBool,
    /// When it last received a message, or started: milliseconds since the Unix epoch.
    last_received_ms: AtomicU64,
    /// The stream's last sequence minus the checkpoint, as last measured.
    lag: AtomicU64,
    /// Received nothing for longer than `nats.stall_ms` although the stream holds more.
    stalled: AtomicBool,
}

impl ConsumerState {
    fn received_now(&self) {
        self.last_received_ms.store(now_ms(), Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// An ordered consumer's pull requests expire after this, and its heartbeats come within it:
/// one on a server that died is noticed and created again in a few seconds (30 s by default).
const CONSUMER_EXPIRES_SECS: u64 = 4;

/// How long the first connection may take before the service starts without it.
const FIRST_CONNECT_SECS: u64 = 5;
/// Between attempts to publish while the stream has no leader (an election).
const PUBLISH_RETRY_MS: u64 = 100;

/// The options every connection is made with (CONTRACT.md §6.1). Secrets come from the files
/// read at start and go nowhere else; the event log names servers and errors, never them.
fn connect_options(
    config: &NatsConfig,
    refusals: &Arc<Refusals>,
) -> Result<async_nats::ConnectOptions, BusError> {
    let refusals = refusals.clone();
    let mut options = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(RETRY_DELAY_MS_MAX))
        })
        .event_callback(move |event| {
            let refusals = refusals.clone();
            async move {
                if let async_nats::Event::ServerError(error) = &event {
                    let text = error.to_string();
                    if text.to_lowercase().contains("permissions violation") {
                        tracing::error!(error = %text, "nats refused an operation");
                        *refusals.last.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some((std::time::Instant::now(), text));
                        refusals.notify.notify_waiters();
                        return;
                    }
                }
                tracing::info!(%event, "nats")
            }
        });
    options = match &config.auth {
        NatsAuth::None => options,
        NatsAuth::Creds(creds) => options.credentials(creds.expose()).map_err(|e| {
            BusError::Internal(format!("nats.creds_file: not a credentials file: {e}"))
        })?,
        NatsAuth::NkeySeed(seed) => options.nkey(seed.expose().to_owned()),
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.expose().to_owned())
        }
        NatsAuth::Token(token) => options.token(token.expose().to_owned()),
    };
    if let Some(tls) = &config.tls {
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &tls.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    if let Some(prefix) = &config.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    Ok(options)
}

/// A connection that keeps trying in the background until the servers are up.
async fn reconnecting(
    config: &NatsConfig,
    refusals: &Arc<Refusals>,
    addrs: Vec<async_nats::ServerAddr>,
) -> Result<async_nats::Client, BusError> {
    connect_options(config, refusals)?
        .retry_on_initial_connect()
        .connect(addrs)
        .await
        .map_err(|e| BusError::Unavailable(format!("connect to {:?}: {e}", config.urls)))
}

/// Errors that waiting will not mend: credentials refused, a certificate not trusted.
fn is_misconfiguration(error: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind::*;
    matches!(error.kind(), Authentication | AuthorizationViolation) || is_tls_failure(error)
}

/// A TLS set-up or handshake that failed (async-nats reports a handshake as an I/O error
/// carrying rustls's).
fn is_tls_failure(error: &async_nats::ConnectError) -> bool {
    if matches!(error.kind(), async_nats::ConnectErrorKind::Tls) {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if cause.is::<async_nats::rustls::Error>()
            || inner.is_some_and(|inner| inner.is::<async_nats::rustls::Error>())
        {
            return true;
        }
        source = cause.source();
    }
    false
}

fn misconfiguration(config: &NatsConfig, error: &async_nats::ConnectError) -> String {
    let keys = match (&config.auth, is_tls_failure(error)) {
        (_, true) => "nats.tls_ca_file, nats.tls_cert_file, nats.tls_key_file",
        (NatsAuth::Creds(_), _) => "nats.creds_file",
        (NatsAuth::NkeySeed(_), _) => "nats.nkey_seed_file",
        (NatsAuth::UserPassword { .. }, _) => "nats.user, nats.password_file",
        (NatsAuth::Token(_), _) => "nats.token_file",
        (NatsAuth::None, _) => "nats.creds_file (or another way to authenticate; none is set)",
    };
    format!(
        "NATS at {} refused the connection ({error}); check {keys}",
        config.urls.join(", ")
    )
}

/// From this many Actions in flight on (a power of two), the applied ones are forgotten.
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
    /// Connects and starts consuming. A server that is not up yet is retried in the background
    /// (the service starts unready); one that refuses the credentials or the TLS handshake fails
    /// the start, naming the cause.
    pub async fn start(config: NatsConfig, writer: Writer) -> Result<NatsBus, BusError> {
        let addrs: Vec<async_nats::ServerAddr> = config
            .urls
            .iter()
            .map(|url| {
                url.parse()
                    .map_err(|e| BusError::Internal(format!("nats.urls {url:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let refusals = Arc::new(Refusals::default());
        let first = tokio::time::timeout(
            Duration::from_secs(FIRST_CONNECT_SECS),
            connect_options(&config, &refusals)?.connect(addrs.clone()),
        )
        .await;
        let client = match first {
            Ok(Ok(client)) => client,
            Ok(Err(error)) if is_misconfiguration(&error) => {
                return Err(BusError::Internal(misconfiguration(&config, &error)))
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, urls = ?config.urls, "NATS is not reachable yet; the service starts unready and keeps trying");
                reconnecting(&config, &refusals, addrs).await?
            }
            Err(_) => {
                tracing::warn!(urls = ?config.urls, "NATS did not answer yet; the service starts unready and keeps trying");
                reconnecting(&config, &refusals, addrs).await?
            }
        };
        let jetstream = jetstream::new(client.clone());
        // The stream exists before the first publish when the broker is up; when it is not, the
        // consumer creates it once the broker is back.
        match tokio::time::timeout(Duration::from_secs(5), ensure_stream(&jetstream, &config)).await
        {
            Ok(Ok(stream)) => {
                // A stream deleted and created again under the same name fails the start.
                check_stream_identity(&stream, &writer)
                    .await
                    .map_err(BusError::Internal)?;
            }
            Ok(Err(error)) => tracing::warn!(%error, "the stream is not there yet"),
            Err(_) => {
                tracing::warn!(urls = ?config.urls, "the stream could not be set up yet; the service starts unready")
            }
        }
        let consumer = Arc::new(ConsumerState::default());
        tokio::spawn(consume(
            jetstream.clone(),
            config.clone(),
            writer.clone(),
            consumer.clone(),
        ));
        tokio::spawn(watch_consumer(
            jetstream.clone(),
            config.clone(),
            writer.clone(),
            consumer.clone(),
        ));
        Ok(NatsBus {
            client,
            jetstream,
            config,
            consumer,
            writer,
            in_flight: Mutex::new(HashMap::new()),
            refusals,
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
        // At each power of two from the threshold on: a scan amortized over the inserts, even
        // while everything is still in flight.
        if in_flight.len() >= IN_FLIGHT_PRUNE_AT && in_flight.len().is_power_of_two() {
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
            && self.consumer.consuming.load(Ordering::Relaxed)
            && !self.is_stalled()
    }

    /// The consumer received nothing for longer than `nats.stall_ms` although the stream holds
    /// messages after the checkpoint.
    pub fn is_stalled(&self) -> bool {
        self.consumer.stalled.load(Ordering::Relaxed)
    }

    /// The stream's last sequence minus the checkpoint, as last measured.
    pub fn consumer_lag(&self) -> u64 {
        self.consumer.lag.load(Ordering::Relaxed)
    }

    /// Publishes every event, in order, then awaits every PubAck; `Ok` only when all are
    /// durable. While the stream has no leader (an election), what is not acknowledged yet is
    /// published again, in order and with the same `Nats-Msg-Id`, until `publish_timeout_ms`;
    /// a publish the server's permissions refuse fails at once, saying so.
    pub async fn publish(
        &self,
        events: Vec<Parsed>,
        submitted_by: Option<String>,
    ) -> Result<Vec<Published>, BusError> {
        let timeout = Duration::from_millis(self.config.publish_timeout_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        let payloads: Vec<(String, async_nats::HeaderMap, bytes::Bytes)> = events
            .iter()
            .map(|parsed| {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", parsed.envelope.event_id.to_string().as_str());
                if let Some(name) = &submitted_by {
                    headers.insert(HEADER_SUBMITTED_BY, name.as_str());
                }
                let payload = serde_json::to_vec(&parsed.envelope).expect("an envelope serializes");
                (subject_for(parsed), headers, payload.into())
            })
            .collect();
        // Events from this index on were published more than once: a `duplicate` there may be
        // this request's own earlier attempt.
        let mut sent_before = payloads.len();
        let mut acks: Vec<async_nats::jetstream::publish::PublishAck> = Vec::new();
        while acks.len() < payloads.len() {
            let from = acks.len();
            let attempt =
                tokio::time::timeout_at(deadline, self.publish_from(&payloads[from..], &mut acks));
            let why = match attempt.await {
                Ok(Ok(())) => continue,
                Ok(Err(PublishFailure::Refused(why))) => return Err(BusError::Unavailable(why)),
                Ok(Err(PublishFailure::Retry(why))) => why,
                Err(_) => format!(
                    "JetStream did not acknowledge within {} ms",
                    timeout.as_millis()
                ),
            };
            let retry_at = tokio::time::Instant::now() + Duration::from_millis(PUBLISH_RETRY_MS);
            if retry_at >= deadline {
                return Err(BusError::Unavailable(format!(
                    "{why}; nothing more was acknowledged within nats.publish_timeout_ms = {} ms, retry",
                    timeout.as_millis()
                )));
            }
            tracing::debug!(%why, from = acks.len(), "publishing again");
            sent_before = sent_before.min(acks.len());
            tokio::time::sleep_until(retry_at).await;
        }
        let mut published = Vec::with_capacity(acks.len());
        for (index, (parsed, ack)) in events.iter().zip(acks).enumerate() {
            let event_id = parsed.envelope.event_id;
            let (status, seq) = if ack.duplicate {
                match self
                    .confirm_duplicate(&event_id, &parsed.hash, ack.sequence)
                    .await?
                {
                    // This request's own earlier attempt stored it.
                    (Status::Duplicate, seq) if index >= sent_before => (Status::Accepted, seq),
                    confirmed => confirmed,
                }
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

/// Why a publish did not go through.
enum PublishFailure {
    /// The stream has no leader now, or the connection dropped: worth publishing again.
    Retry(String),
    /// The server refused it (permissions, size): publishing again cannot help.
    Refused(String),
}

impl NatsBus {
    /// Publishes `payloads` in order and awaits their PubAcks, appending each to `acks`;
    /// stops at the first that fails.
    async fn publish_from(
        &self,
        payloads: &[(String, async_nats::HeaderMap, bytes::Bytes)],
        acks: &mut Vec<async_nats::jetstream::publish::PublishAck>,
    ) -> Result<(), PublishFailure> {
        use async_nats::jetstream::context::PublishErrorKind;
        let classify = |subject: &str, error: async_nats::jetstream::context::PublishError| {
            if let Some(refusal) = self.refusal_for(subject) {
                return PublishFailure::Refused(format!("NATS refused the publish: {refusal}"));
            }
            match error.kind() {
                PublishErrorKind::MaxPayloadExceeded => {
                    PublishFailure::Refused(format!("NATS refused the publish: {error}"))
                }
                _ => PublishFailure::Retry(format!("publish to {subject}: {error}")),
            }
        };
        let mut pending = Vec::with_capacity(payloads.len());
        for (subject, headers, payload) in payloads {
            let ack = self
                .jetstream
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await
                .map_err(|error| classify(subject, error))?;
            pending.push((subject, ack));
        }
        for (subject, ack) in pending {
            // A publish the server's permissions refuse is never acknowledged: the server says
            // so on the connection at once, and that answers it.
            let ack = std::future::IntoFuture::into_future(ack);
            tokio::pin!(ack);
            loop {
                let refused = self.refusals.notify.notified();
                tokio::select! {
                    ack = &mut ack => {
                        acks.push(ack.map_err(|error| classify(subject, error))?);
                        break;
                    }
                    () = refused => {
                        if let Some(refusal) = self.refusal_for(subject) {
                            return Err(PublishFailure::Refused(format!(
                                "NATS refused the publish: {refusal}"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The permissions violation the server reported for `subject`, if it did.
    fn refusal_for(&self, subject: &str) -> Option<String> {
        let last = self.refusals.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(at, text)| at.elapsed() < Duration::from_secs(10) && text.contains(subject))
            .map(|(_, text)| text.clone())
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
    // What the create-or-get answered with: no second request.
    let mut found = stream.cached_info().config.clone();
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

/// The stream this data directory's checkpoint counts in: its name and creation time, kept in
/// `nats-stream` beside the store when the stream is first seen.
const STREAM_IDENTITY_FILE: &str = "nats-stream";

/// Checks that the stream on the servers is the one the stored checkpoint counts in: one
/// deleted and created again under the same name starts over at 1, and consuming it would
/// silently skip its messages up to the checkpoint.
async fn check_stream_identity(stream: &stream::Stream, writer: &Writer) -> Result<(), String> {
    // As `ensure_stream` just read it.
    let info = stream.cached_info();
    let name = info.config.name.clone();
    let created = info.created.unix_timestamp_nanos();
    let last = info.state.last_sequence;
    let checkpoint = writer.position().checkpoint;
    let path = writer.store().dir().join(STREAM_IDENTITY_FILE);
    let identity = format!("{name} {created}\n");
    let remedy = "start this instance with an empty data directory (it catches up from the \
                  stream) or restore the stream it was applied from";
    match std::fs::read_to_string(&path) {
        Ok(kept) if kept == identity => {}
        Ok(kept) => {
            return Err(format!(
                "the stream {name} on the servers is not the one this data directory applied \
                 (kept: {:?}, found: {:?}): it was deleted and created again; {remedy}",
                kept.trim(),
                identity.trim()
            ))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if checkpoint > last {
                return Err(format!(
                    "the stream {name} holds messages up to {last}, but this data directory \
                     applied up to {checkpoint}: it is another stream; {remedy}"
                ));
            }
            let temp = path.with_extension("partial");
            std::fs::write(&temp, &identity)
                .and_then(|()| std::fs::File::open(&temp)?.sync_all())
                .and_then(|()| std::fs::rename(&temp, &path))
                .map_err(|e| format!("keep the stream's identity in {}: {e}", path.display()))?;
        }
        Err(error) => return Err(format!("read {}: {error}", path.display())),
    }
    if checkpoint > last {
        return Err(format!(
            "the stream {name} holds messages up to {last}, but this data directory applied up \
             to {checkpoint}; {remedy}"
        ));
    }
    Ok(())
}

/// Measures the consumer's lag and whether it stalled, every second, until the writer stops.
async fn watch_consumer(
    jetstream: jetstream::Context,
    config: NatsConfig,
    writer: Writer,
    consumer: Arc<ConsumerState>,
) {
    let mut stalled_since_logged = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let last = tokio::time::timeout(Duration::from_secs(2), async {
            // Getting the stream reads its info: one request a second.
            let stream = jetstream.get_stream(&config.stream).await.ok()?;
            Some(stream.cached_info().state.last_sequence)
        })
        .await
        .ok()
        .flatten();
        // While the stream cannot be asked (an election), the last lag measured stands.
        let lag = match last {
            Some(last) => last.saturating_sub(writer.position().checkpoint),
            None => consumer.lag.load(Ordering::Relaxed),
        };
        consumer.lag.store(lag, Ordering::Relaxed);
        let quiet_ms = now_ms().saturating_sub(consumer.last_received_ms.load(Ordering::Relaxed));
        let stalled = lag > 0 && quiet_ms > config.stall_ms;
        consumer.stalled.store(stalled, Ordering::Relaxed);
        if stalled && !stalled_since_logged {
            tracing::warn!(
                lag,
                quiet_ms,
                "the consumer received nothing although the stream holds more; not ready"
            );
        } else if !stalled && stalled_since_logged {
            tracing::info!(lag, "the consumer is receiving again");
        }
        stalled_since_logged = stalled;
    }
}

/// Feeds the writer from the stream, resuming after the last sequence handed over. Runs until
/// the writer stops; any NATS error restarts the consumer from where it was.
async fn consume(
    jetstream: jetstream::Context,
    config: NatsConfig,
    writer: Writer,
    consumer: Arc<ConsumerState>,
) {
    let mut next = writer.position().checkpoint + 1;
    let mut attempt: u64 = 0;
    loop {
        match consume_from(&jetstream, &config, &writer, &consumer, &mut next).await {
            Ok(()) => return,
            Err(error) => {
                consumer.consuming.store(false, Ordering::Relaxed);
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
    state: &ConsumerState,
    next: &mut u64,
) -> Result<(), String> {
    let stream = ensure_stream(jetstream, config).await?;
    check_stream_identity(&stream, writer).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: *next,
            },
            max_expires: Duration::from_secs(CONSUMER_EXPIRES_SECS),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create consumer: {e}"))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| format!("consume: {e}"))?;
    state.received_now();
    state.consuming.store(true, Ordering::Relaxed);
    tracing::info!(start_sequence = *next, "consuming the stream");
    let mut chunks = messages.ready_chunks(CONSUME_BATCH_MAX);
    while let Some(chunk) = chunks.next().await {
        state.received_now();
        let mut items = Vec::with_capacity(chunk.len());
        let mut last = None;
        for message in chunk {
            let message = message.map_err(|e| format!("message: {e}"))?;
            let info = message.info().map_err(|e| format!("message info: {e}"))?;
            let stream_seq = info.stream_sequence;
            // The stream's own time for the message: the same `recorded_at` on every replica.
            let published = DateTime::<Utc>::from_timestamp_nanos(
                info.published
                    .unix_timestamp_nanos()
                    .clamp(0, i64::MAX as i128) as i64,
            );
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
                    published,
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
