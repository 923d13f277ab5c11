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

/// Writes `count` registrations and closes the store.
fn store_with(dir: &std::path::Path, count: usize) {
    let (writer, thread) = open(dir);
    let events: Vec<Vec<u8>> = (0..count)
        .map(|n| registration(&uuid::Uuid::new_v4().to_string(), n))
        .collect();
    submit(&writer, &events);
    drop(writer);
    thread.join().unwrap();
}

fn snapshots(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("snap."))
        .collect();
    names.sort();
    names
}

/// sled reads the newest file named `snap.*`, an unfinished `.generating` one included: the
/// leftover of a snapshot write that ran out of space made every later open fail with "Read
/// corrupted data".
#[test]
fn an_unfinished_snapshot_left_by_a_full_disk_does_not_stop_the_store_opening() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 50);
    store_with(dir.path(), 0); // sled writes a snapshot at an open that finds the log advanced
    let sled_dir = dir.path().join("sled");
    assert!(!snapshots(&sled_dir).is_empty(), "sled wrote a snapshot");
    std::fs::write(sled_dir.join("snap.FFFFFFFFFFFFFFFF.generating"), b"").unwrap();

    let store = Store::open(dir.path(), 8 << 20).expect("the store opens");
    assert_eq!(store.last_seq().unwrap(), 50);
    assert!(snapshots(&sled_dir)
        .iter()
        .all(|name| !name.ends_with(".generating")));
}

/// Before sled opens a store, a hard link of its last complete snapshot is kept beside it; a
/// store whose snapshot files were lost opens from the kept one.
#[test]
fn a_store_whose_snapshots_were_lost_opens_from_the_kept_one() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 30);
    store_with(dir.path(), 0); // this open writes a snapshot (the log advanced since)
    store_with(dir.path(), 0); // and this one keeps it before sled opens
    let (sled_dir, keep_dir) = (dir.path().join("sled"), dir.path().join("snapshot-keep"));
    let kept = snapshots(&keep_dir);
    assert!(!kept.is_empty(), "a snapshot is kept");
    for name in snapshots(&sled_dir) {
        std::fs::remove_file(sled_dir.join(name)).unwrap();
    }

    let store = Store::open(dir.path(), 8 << 20).expect("the store opens");
    assert_eq!(store.last_seq().unwrap(), 30);
    let record = store
        .record(&impact::domain::ids::ActionId::parse("MIEUX-TH-0029").unwrap())
        .unwrap();
    assert!(record.is_some(), "the views are there");
    assert!(!snapshots(&sled_dir).is_empty(), "the snapshot is back");
}

/// `serve`, `rebuild` and `import` open through the reserve: below it, the store is not
/// opened and not a file of it changes.
#[test]
fn a_store_below_the_free_space_reserve_is_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 5);
    let free = impact::store::health::free_bytes(dir.path()).unwrap();
    let error = Store::open_reserved(dir.path(), 8 << 20, free + (1 << 30))
        .err()
        .expect("refused below the reserve")
        .to_string();
    assert!(error.contains("server.min_free_mib"), "{error}");
    assert!(Store::open_reserved(dir.path(), 8 << 20, 1 << 20).is_ok());
}
