//! The running service: opens the store, starts the writer and the bus, loads the demo data,
//! runs the review schedule and serves HTTP until SIGINT or SIGTERM.

use crate::bus::{nats::NatsBus, Bus, BusError};
use crate::config::Config;
use crate::domain::event::format_timestamp;
use crate::domain::ids::{Country, REVIEW_ACTION, REVIEW_COUNTRY};
use crate::domain::review::ReviewReport;
use crate::domain::validate::{Origin, Parsed, Schemas};
use crate::ingest::Writer;
use crate::metrics::Metrics;
use crate::queries;
use crate::review::{self, Clock};
use crate::store::Store;
use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How long `?wait=true` and the service's own publishes wait for the consumer to apply.
pub const APPLY_WAIT_MS_MAX: u64 = 30_000;
/// The longest pause between attempts at a scheduled review that failed.
const REVIEW_RETRY_DELAY_SECS_MAX: u64 = 60;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub writer: Writer,
    pub schemas: Arc<Schemas>,
    pub metrics: Arc<Metrics>,
    pub bus: Bus,
    /// Rendered Action views, served again while their record is unchanged.
    pub views: crate::api::ViewCache,
    /// Drawn Action pages (LZ4-compressed), served again while their record is unchanged: one
    /// cache per role, since a page offers each role its own links (field office, evaluator,
    /// admin).
    pub pages: [crate::api::ViewCache; 3],
    /// The reviews the time-travel forms offer, read again once a review is applied.
    pub known_reviews: crate::web::known_reviews::KnownReviews,
    /// The NDJSON streams of the log open now, at most `server.max_streams`.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Why the scheduled review being retried cannot be written, while it cannot.
    review_failure: std::sync::Mutex<Option<String>>,
    /// Browsers' sessions (CONTRACT.md §4.2).
    pub sessions: crate::web::session::Sessions,
    /// With auth off there is no session: the forms' CSRF token is this process's.
    pub open_csrf: String,
}

impl App {
    pub async fn start(config: Config) -> anyhow::Result<(Arc<App>, std::thread::JoinHandle<()>)> {
        let store =
            Store::open_reserved(&config.data_dir, config.cache_bytes, config.min_free_bytes)
                .with_context(|| format!("open the store in {}", config.data_dir.display()))?;
        let schemas = Arc::new(Schemas::load());
        let metrics = Arc::new(Metrics::new());
        let (writer, writer_thread) =
            Writer::spawn(store.clone(), schemas.clone(), metrics.clone())?;
        let bus = match &config.nats {
            None => Bus::Embedded(writer.clone()),
            Some(nats) => Bus::Nats(Box::new(
                NatsBus::start(nats.clone(), writer.clone()).await?,
            )),
        };
        let streams = Arc::new(tokio::sync::Semaphore::new(config.max_streams));
        let config_session_hours = config.session_hours;
        Ok((
            Arc::new(App {
                config,
                store,
                writer,
                schemas,
                metrics,
                bus,
                views: crate::api::ViewCache::new(crate::api::VIEW_CACHE_BYTES),
                pages: std::array::from_fn(|_| {
                    crate::api::ViewCache::new(crate::api::VIEW_CACHE_BYTES)
                }),
                known_reviews: Default::default(),
                streams,
                review_failure: std::sync::Mutex::new(None),
                sessions: crate::web::session::Sessions::new(config_session_hours),
                open_csrf: crate::web::session::random_token(),
            }),
            writer_thread,
        ))
    }

    /// The newest seq a read may show: what the writer has made durable (CONTRACT.md §11).
    pub fn durable_seq(&self) -> u64 {
        self.writer.position().last_seq
    }

    /// Waits until the log is durable up to `seq` (a duplicate's seq is shown only then).
    pub async fn wait_durable(&self, seq: u64) -> bool {
        self.wait_position(|position| position.last_seq >= seq)
            .await
    }

    /// Waits until the writer has applied the stream up to `stream_seq` (NATS mode).
    pub async fn wait_applied(&self, stream_seq: u64) -> bool {
        self.wait_position(|position| position.checkpoint >= stream_seq)
            .await
    }

    /// Waits, at most `APPLY_WAIT_MS_MAX`, until the durable position satisfies `until`.
    async fn wait_position(&self, until: impl Fn(&crate::ingest::Position) -> bool) -> bool {
        let wait = self.writer.wait_for(until);
        matches!(
            tokio::time::timeout(Duration::from_millis(APPLY_WAIT_MS_MAX), wait).await,
            Ok(Ok(_))
        )
    }

    /// Notes that a scheduled review cannot be written now (and why), or that it was.
    fn review_failing(&self, cause: Option<String>) {
        if cause.is_some() {
            self.metrics.review_failures.inc();
        }
        self.metrics.review_failing.set(i64::from(cause.is_some()));
        *self
            .review_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = cause;
    }

    /// Why the scheduled review being retried cannot be written, while it cannot.
    pub fn review_failure(&self) -> Option<String> {
        self.review_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs a review now, appends it to the log, and returns its report. For a scheduled slot
    /// whose review is in the log already, that review is returned and nothing is written.
    pub async fn run_review(
        self: &Arc<Self>,
        as_of: Option<NaiveDate>,
        country: Option<Country>,
        slot: Option<DateTime<Utc>>,
    ) -> Result<ReviewReport, BusError> {
        let review_id = match slot {
            Some(slot) => review::slot_review_id(slot),
            None => format!("review-{}", uuid::Uuid::now_v7()),
        };
        // A decision of the write side: a slot's review written and not yet synced counts.
        if let Some(existing) =
            queries::review(&self.store, u64::MAX, &review_id).map_err(internal)?
        {
            return Ok(existing);
        }
        let as_of = as_of
            .or(slot.map(|slot| slot.date_naive()))
            .unwrap_or_else(queries::today);
        let app = self.clone();
        let slot_text = slot.map(review::slot_text);
        let id = review_id.clone();
        let report = tokio::task::spawn_blocking(move || {
            queries::compute_review(
                &app.store,
                app.durable_seq(),
                &app.config.rules,
                id,
                as_of,
                country,
                slot_text,
            )
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        let mut events = self.review_events(report.clone())?;
        // The parts are durable before their head is published: a head never names a part
        // that is not in the log (a crash between leaves parts that nothing names).
        let head = events.pop().expect("a review has its head event");
        let mut published = Vec::new();
        if !events.is_empty() {
            published = self.bus.publish(events, Origin::Service, None).await?;
        }
        published.extend(self.bus.publish(vec![head], Origin::Service, None).await?);
        if let Some(stream_seq) = published.iter().filter_map(|p| p.stream_seq).max() {
            if !self.wait_applied(stream_seq).await {
                return Err(BusError::Unavailable(
                    "the review was published but not applied in time".into(),
                ));
            }
        }
        // Another replica may have written this slot's review first: the log's copy is the one.
        Ok(queries::review(&self.store, self.durable_seq(), &review_id)
            .map_err(internal)?
            .unwrap_or(report))
    }
}

impl App {
    /// A report as the events that store it: one `review.completed` when it fits one message
    /// of the bus, else its `review.part` events and then its head, which names them (§11).
    fn review_events(&self, report: ReviewReport) -> Result<Vec<Parsed>, BusError> {
        let message_max = self.bus.message_bytes_max();
        let country = report
            .country
            .as_ref()
            .map_or(REVIEW_COUNTRY, |c| c.as_str())
            .to_owned();
        let event = |event_type: &str, event_id: uuid::Uuid, data: Value| {
            let event = json!({
                "event_id": event_id.to_string(),
                "type": event_type,
                "action_id": REVIEW_ACTION,
                "country": country,
                "occurred_on": queries::today(),
                "reported_by": "impact-review",
                "reported_at": format_timestamp(&Utc::now()),
                "data": data,
            });
            let parsed = self
                .schemas
                .parse_value(event, Origin::Service)
                .map_err(|rejection| BusError::Rejected(vec![(0, rejection)]))?;
            Ok::<_, BusError>((parsed.canonical.len() + MESSAGE_HEADROOM_BYTES, parsed))
        };
        let head_id = review_event_id(&report.review_id);
        let data = serde_json::to_value(&report).map_err(internal)?;
        if let Ok((size, whole)) = event("review.completed", head_id, data) {
            if size <= message_max {
                return Ok(vec![whole]);
            }
        }
        let (mut head, parts) = report.into_parts(message_max - PART_ENVELOPE_BYTES);
        let mut events = Vec::with_capacity(parts.len() + 1);
        for part in parts {
            let data = serde_json::to_value(&part).map_err(internal)?;
            // From the part's content: a review computed again (another until_seq) has other
            // parts, and its head names only its own.
            let part_id = review_event_id(&data.to_string());
            head.parts.push(part_id);
            events.push(event("review.part", part_id, data)?.1);
        }
        let data = serde_json::to_value(&head).map_err(internal)?;
        events.push(event("review.completed", head_id, data)?.1);
        Ok(events)
    }
}

/// Room kept in a message for its headers (`Nats-Msg-Id`, the submitter).
const MESSAGE_HEADROOM_BYTES: usize = 1024;
/// Room kept in a part's message for its envelope around the findings and highlights.
const PART_ENVELOPE_BYTES: usize = 8 * 1024;

fn internal(error: impl std::fmt::Display) -> BusError {
    BusError::Internal(error.to_string())
}

/// A review's event id follows from its review id, so two writers of one slot agree on it.
fn review_event_id(review_id: &str) -> uuid::Uuid {
    let digest = Sha256::digest(review_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// `impact serve`: runs until SIGINT/SIGTERM, then drains and exits cleanly.
pub async fn serve(mut config: Config, demo: bool) -> anyhow::Result<()> {
    if demo && config.iati.is_none() {
        // The demo's download links all work; a configured `[iati]` is kept as it is.
        config.iati = Some(crate::config::IatiConfig::demo());
    }
    // Every connection is a descriptor: take all the kernel allows, then cap connections
    // within it, so that a flood of sockets can never leave the store without one.
    let open_files = crate::server::raise_open_files_limit().context("raise RLIMIT_NOFILE")?;
    let max_connections = config.connection_cap(open_files)?;
    let listener = match crate::restart::inherited_listener()? {
        Some(inherited) => tokio::net::TcpListener::from_std(inherited)?,
        None => tokio::net::TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("bind {}", config.http_addr))?,
    };
    let addr = listener.local_addr()?;
    let (app, writer_thread) = App::start(config).await?;
    // Crash-only: a failed write restarts the process, on the same socket (`restart.rs`).
    let listener_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    app.store.health().on_failure(move |error| {
        let error = error.to_owned();
        std::thread::spawn(move || crate::restart::restart_after_failure(listener_fd, &error));
    });
    crate::restart::forget_restarts_after(Duration::from_secs(60));
    if demo {
        crate::demo::load_if_empty(&app).await?;
    }
    let scheduler = app.config.review_schedule.as_deref().map(|schedule| {
        let cron = review::parse_schedule(schedule).expect("checked when the config was loaded");
        let app = app.clone();
        tokio::spawn(review::schedule_loop(cron, Clock::system(), move |slot| {
            let app = app.clone();
            async move {
                // A slot must yield its review: retry (the broker may be down) until it does,
                // saying why in the log once per cause, and on /readyz and /metrics meanwhile.
                let mut delay = Duration::from_secs(1);
                let mut last_cause = None;
                loop {
                    match app.run_review(None, None, Some(slot)).await {
                        Ok(report) => {
                            tracing::info!(review_id = %report.review_id, "scheduled review in the log");
                            app.review_failing(None);
                            return;
                        }
                        Err(error) => {
                            let cause = error.to_string();
                            if last_cause.as_ref() != Some(&cause) {
                                tracing::error!(error = %cause, %slot, "scheduled review could not be written; retrying until it is");
                            } else {
                                tracing::debug!(error = %cause, %slot, retry_in_s = delay.as_secs(), "scheduled review still failing");
                            }
                            app.review_failing(Some(format!("slot {}: {cause}", review::slot_text(slot))));
                            last_cause = Some(cause);
                        }
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(REVIEW_RETRY_DELAY_SECS_MAX));
                }
            }
        }))
    });
    let bus = match &app.config.nats {
        Some(nats) => format!(
            "NATS JetStream at {} (stream {})",
            nats.urls.join(", "),
            nats.stream
        ),
        None => "the embedded bus".to_owned(),
    };
    println!("impact listening on http://{addr}/ (dashboard at http://{addr}/, API at http://{addr}/v1), {bus}, data in {}", app.config.data_dir.display());
    tracing::info!(%addr, "serving");
    let router = crate::api::router(app.clone());
    tracing::info!(max_connections, open_files, "connection cap");
    crate::server::serve(listener, router, max_connections, shutdown_signal()).await?;
    tracing::info!("HTTP drained; flushing");
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    app.store.sync()?;
    drop(writer_thread);
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down");
}
