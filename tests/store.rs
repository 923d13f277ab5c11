//! The store's event-id lookup keys its in-memory map by 64 bits of the id: ids that share
//! those bits must still each be applied once and answered `duplicate` after, before and after
//! the store is reopened (the map is then loaded from the index segments).

use impact::domain::validate::{Origin, Schemas};
use impact::ingest::{Incoming, ItemOutcome, Payload, Source, Writer};
use impact::metrics::Metrics;
use impact::store::Store;
use serde_json::json;
use std::sync::Arc;

/// A uuid whose two 64-bit halves are `high` and `low` (the map's key is their xor).
fn event_id(high: u64, low: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_le_bytes());
    bytes[8..].copy_from_slice(&low.to_le_bytes());
    uuid::Uuid::from_bytes(bytes).to_string()
}

fn registration(id: &str, n: usize) -> Vec<u8> {
    json!({
        "event_id": id,
        "type": "action.registered",
        "action_id": format!("MIEUX-TH-{n:04}"),
        "country": "TH",
        "occurred_on": "2024-03-01",
        "reported_by": "fo-bangkok",
        "data": {"title": "Study visit", "modality": "study_visit", "partner_institutions": ["Ministry"]}
    })
    .to_string()
    .into_bytes()
}

fn submit(writer: &Writer, events: &[Vec<u8>]) -> Vec<ItemOutcome> {
    let items = events
        .iter()
        .map(|raw| Incoming {
            payload: Payload::Raw(raw.clone().into()),
            origin: Origin::Client,
            source: Source::Http,
            submitted_by: None,
        })
        .collect();
    writer.blocking_submit(items, false).unwrap()
}

fn open(dir: &std::path::Path) -> (Writer, std::thread::JoinHandle<()>) {
    let store = Store::open(dir, 8 << 20).unwrap();
    Writer::spawn(store, Arc::new(Schemas::load()), Arc::new(Metrics::new())).unwrap()
}

#[test]
fn ids_sharing_the_lookup_key_are_each_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    // Same xor of halves: 0x0102 ^ 0x0201 == 0x0303 ^ 0 == 0x0202 ^ 0x0101.
    let ids = [
        event_id(0x0102, 0x0201),
        event_id(0x0303, 0),
        event_id(0x0202, 0x0101),
    ];
    let events: Vec<Vec<u8>> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| registration(id, n))
        .collect();

    let (writer, thread) = open(dir.path());
    // The first is stored before the others are looked up (one batch each).
    assert_eq!(
        submit(&writer, &events[..1]),
        [ItemOutcome::Applied { seq: 1 }]
    );
    assert_eq!(
        submit(&writer, &events[1..2]),
        [ItemOutcome::Applied { seq: 2 }]
    );
    assert_eq!(
        submit(&writer, &events[2..]),
        [ItemOutcome::Applied { seq: 3 }]
    );
    let again = [
        ItemOutcome::Duplicate { seq: 1 },
        ItemOutcome::Duplicate { seq: 2 },
        ItemOutcome::Duplicate { seq: 3 },
    ];
    assert_eq!(submit(&writer, &events), again);
    drop(writer);
    thread.join().unwrap();

    // Reopened: the map is read back from the index segments.
    let (writer, thread) = open(dir.path());
    assert_eq!(submit(&writer, &events), again);
    drop(writer);
    thread.join().unwrap();
}
