//! Core benchmarks (issue: foundation). Prints each figure beside a ceiling measured in the same
//! run on the same bytes:
//! - append through the single writer (validation included, one flush per batch) vs a raw sled
//!   batch insert of the same bytes with one flush per batch;
//! - rebuild of every view vs a raw sled scan of the log;
//! - peak RSS of `impact import` and `impact rebuild` over the same events, as child processes.
//!
//! Run: `cargo bench --bench core` (IMPACT_BENCH_EVENTS to change the 1,000,000 events).

use impact::domain::validate::{Origin, Schemas};
use impact::ingest::{Incoming, ItemOutcome, Payload, Source, Writer};
use impact::metrics::Metrics;
use impact::store::Store;
use std::sync::Arc;
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;

use common::event_json;

const BATCH_EVENTS: usize = 1000;
const ACTIONS: usize = common::ACTIONS;

fn main() {
    let events: usize = std::env::var("IMPACT_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("core benchmarks: {events} events over {ACTIONS} Actions, batches of {BATCH_EVENTS}, {cores} cores");
    let dir = tempfile::tempdir().unwrap();

    // IMPACT_BENCH_STORE=<dir> keeps the appended store there, and a later run that finds it
    // skips the append figures and measures the scan, rebuild and memory on that store.
    let kept = std::env::var_os("IMPACT_BENCH_STORE").map(std::path::PathBuf::from);
    let store_dir = kept.clone().unwrap_or_else(|| dir.path().join("store"));
    if kept.is_none() || !store_dir.join("sled").exists() {
        append(&dir, &store_dir, events);
    }
    let store = Store::open(&store_dir, impact::store::CACHE_BYTES_DEFAULT).unwrap();
    let events = store.last_seq().unwrap() as usize;

    // Ceiling: a raw scan of the log, touching every byte.
    let started = Instant::now();
    let mut bytes = 0usize;
    let mut count = 0usize;
    for item in store.log_after(0) {
        let (_, value) = item.unwrap();
        bytes += value.iter().map(|b| *b as usize).sum::<usize>() & 1;
        count += 1;
    }
    assert_eq!(count, events);
    let raw_scan = common::rate(events, started.elapsed().as_secs_f64());
    println!("raw sled scan of the log (ceiling): {raw_scan:>10.0} events/s ({bytes})");
    drop(store);

    let started = Instant::now();
    let folded = impact::commands::rebuild(&store_dir, false).unwrap();
    let rebuild = common::rate(folded as usize, started.elapsed().as_secs_f64());
    println!("rebuild of every view:           {rebuild:>10.0} events/s ({:.0}% of raw scan; target >= 1,000,000 and >= 30%)", 100.0 * rebuild / raw_scan);

    // Peak RSS of the CLI over the same events.
    let export = dir.path().join("export.ndjson");
    let binary = env!("CARGO_BIN_EXE_impact");
    let run = |args: &[&str]| {
        let started = Instant::now();
        let output = std::process::Command::new(binary)
            .args(args)
            .env("IMPACT_REPORT_PEAK_RSS", "1")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let rss = stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak RSS "))
            .unwrap_or("?")
            .to_owned();
        (rss, started.elapsed().as_secs_f64())
    };
    run(&[
        "export",
        "--data-dir",
        store_dir.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
    ]);
    let imported = dir.path().join("imported");
    let (rss, seconds) = run(&[
        "import",
        "--data-dir",
        imported.to_str().unwrap(),
        export.to_str().unwrap(),
    ]);
    println!(
        "impact import of {events} events:  peak RSS {rss} ({:.0} events/s; target <= 256 MiB)",
        common::rate(events, seconds)
    );
    let (rss, seconds) = run(&["rebuild", "--data-dir", imported.to_str().unwrap()]);
    println!(
        "impact rebuild of {events} events: peak RSS {rss} ({:.0} events/s; target <= 256 MiB)",
        common::rate(events, seconds)
    );
}

/// The append figures: a raw sled insert of the events (the ceiling), then the same events
/// through the single writer into a new store at `store_dir`.
fn append(dir: &tempfile::TempDir, store_dir: &std::path::Path, events: usize) {
    // Ceiling: the same bytes, inserted raw, one flush per batch.
    let raw = Store::open(&dir.path().join("raw"), impact::store::CACHE_BYTES_DEFAULT).unwrap();
    let started = Instant::now();
    for start in (0..events).step_by(BATCH_EVENTS) {
        let mut batch = sled::Batch::default();
        for n in start..(start + BATCH_EVENTS).min(events) {
            let mut key = vec![b'l'];
            key.extend_from_slice(&(n as u64 + 1).to_be_bytes());
            batch.insert(key, event_json(n));
        }
        raw.raw().apply_batch(batch).unwrap();
        raw.sync().unwrap();
    }
    let raw_insert = common::rate(events, started.elapsed().as_secs_f64());
    println!("raw sled batch insert (ceiling): {raw_insert:>10.0} events/s");

    // Append through the single writer: raw bytes in, schema and rules, one atomic write and
    // one flush per batch; the producers run the schema checks, as the HTTP handlers do.
    let store = Store::open(store_dir, impact::store::CACHE_BYTES_DEFAULT).unwrap();
    let (writer, thread) = Writer::spawn(
        store.clone(),
        Arc::new(Schemas::load()),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let started = Instant::now();
    let batch_of = |range: std::ops::Range<usize>| -> Vec<Incoming> {
        range
            .map(|n| Incoming {
                payload: Payload::Raw(event_json(n).into()),
                origin: Origin::Client,
                source: Source::Http,
                submitted_by: None,
            })
            .collect()
    };
    let check = |outcomes: Vec<ItemOutcome>| {
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, ItemOutcome::Applied { .. })),
            "{:?}",
            outcomes
                .iter()
                .find(|o| !matches!(o, ItemOutcome::Applied { .. }))
        );
    };
    // The registrations go first, queued without waiting for their answers (the writer applies
    // its queue in order, so every later event finds its Action), as a client pipelining them would.
    let registrations: Vec<_> = (0..ACTIONS.min(events))
        .step_by(BATCH_EVENTS)
        .map(|start| {
            let end = (start + BATCH_EVENTS).min(ACTIONS.min(events));
            writer.blocking_send(batch_of(start..end), false).unwrap()
        })
        .collect();
    // Then sixteen producers (IMPACT_BENCH_PRODUCERS), each waiting for its batch's answer
    // before sending the next, keep the writer's queue full.
    let producers: usize = std::env::var("IMPACT_BENCH_PRODUCERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16);
    let rest = events.saturating_sub(ACTIONS);
    std::thread::scope(|scope| {
        for p in 0..producers {
            let writer = writer.clone();
            let chunk = rest.div_ceil(producers);
            let start = ACTIONS + p * chunk;
            let end = (start + chunk).min(events);
            scope.spawn(move || {
                for first in (start..end).step_by(BATCH_EVENTS) {
                    let batch = batch_of(first..(first + BATCH_EVENTS).min(end));
                    check(writer.blocking_submit(batch, false).unwrap());
                }
            });
        }
    });
    for answer in registrations {
        check(answer.blocking_recv().unwrap().unwrap());
    }
    let append_seconds = started.elapsed().as_secs_f64();
    let append = common::rate(events, append_seconds);
    common::print_thread_cpu(append_seconds);
    drop(writer);
    thread.join().unwrap();
    println!("append via the single writer:    {append:>10.0} events/s ({:.0}% of raw insert; target >= 50,000, stretch 100,000)", 100.0 * append / raw_insert);
    assert_eq!(store.last_seq().unwrap(), events as u64);
}
