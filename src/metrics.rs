//! Prometheus metrics (`GET /metrics`): the four the contract names, and the registry that
//! renders them as text.

use crate::domain::validate::RejectionCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

pub struct Metrics {
    pub applied: Counter,
    pub duplicate: Counter,
    rejected: Family<CodeLabel, Counter>,
    pub log_position: Gauge,
    /// 1 while the store takes writes, 0 while they are refused (reads go on either way).
    pub writes_up: Gauge,
    pub store_free_bytes: Gauge,
    /// 1 while a scheduled review's slot could not be written and is being retried.
    pub review_failing: Gauge,
    pub review_failures: Counter,
    /// NATS: the stream's last sequence minus the checkpoint.
    pub consumer_lag: Gauge,
    registry: Registry,
}

impl Metrics {
    pub fn new() -> Metrics {
        let applied = Counter::default();
        let duplicate = Counter::default();
        let rejected = Family::<CodeLabel, Counter>::default();
        let log_position = Gauge::default();
        let writes_up = Gauge::default();
        let store_free_bytes = Gauge::default();
        let review_failing = Gauge::default();
        let review_failures = Counter::default();
        let consumer_lag = Gauge::default();
        let mut registry = Registry::default();
        let impact = registry.sub_registry_with_prefix("impact");
        impact.register(
            "events_applied",
            "Events appended to the log",
            applied.clone(),
        );
        impact.register(
            "events_duplicate",
            "Events seen again with the same content, applied once",
            duplicate.clone(),
        );
        impact.register(
            "events_rejected",
            "Events rejected, by rejection code",
            rejected.clone(),
        );
        impact.register(
            "log_position",
            "The seq of the last event in the log",
            log_position.clone(),
        );
        impact.register(
            "writes_up",
            "1 while the store takes writes; 0 while they are refused (no space, a failed write)",
            writes_up.clone(),
        );
        impact.register(
            "store_free_bytes",
            "Free space on the store's filesystem, as last measured",
            store_free_bytes.clone(),
        );
        impact.register(
            "review_slot_failing",
            "1 while a scheduled review could not be written and is being retried (see /readyz)",
            review_failing.clone(),
        );
        impact.register(
            "review_failures",
            "Attempts to write a scheduled review that failed",
            review_failures.clone(),
        );
        impact.register(
            "consumer_lag",
            "NATS mode: the stream's last sequence minus the checkpoint applied",
            consumer_lag.clone(),
        );
        // Every code is present from the start, so a dashboard sees zeros rather than gaps.
        for code in RejectionCode::ALL {
            let _ = rejected.get_or_create(&CodeLabel {
                code: code.as_str(),
            });
        }
        Metrics {
            applied,
            duplicate,
            rejected,
            log_position,
            writes_up,
            store_free_bytes,
            review_failing,
            review_failures,
            consumer_lag,
            registry,
        }
    }

    pub fn rejected(&self, code: RejectionCode, count: u64) {
        self.rejected
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc_by(count);
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("metrics encode");
        text
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
