//! Review benchmark (issue: reviews): a review over 10,000 Actions and 50,000 outcomes, from
//! the stored records through the fold and the flags to the report, timed; and the memory of
//! the views it reads next to the memory the review itself allocates (process RSS growth).
//!
//! Run: `cargo bench --bench review`.

#[path = "common/mod.rs"]
mod common;

use common::rss_kib;
use impact::domain::fold::{ActionRecord, ActionStatus, Fact, Filters, FoldEvent, ViewRules};
use impact::domain::ids::{ActionId, Country, OutcomeId};
use impact::domain::review::{build_report, ReviewPart, ReviewScope};
use impact::domain::tracks::Track;
use std::time::Instant;

const ACTIONS: usize = 10_000;
const OUTCOMES_PER_ACTION: usize = 5;
const EVENTS_PER_OUTCOME: usize = 3;
/// About what a part of a review holds on NATS's default 1 MiB `max_payload`.
const PART_BYTES: usize = 1024 * 1024 - 9 * 1024;

fn main() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let tracks: Vec<Track> = Track::all().collect();
    let mut seq = 0u64;
    let records: Vec<ActionRecord> = (0..ACTIONS)
        .map(|a| {
            let mut record = ActionRecord::new(
                ActionId::parse(&format!("MIEUX-TH-{a:05}")).unwrap(),
                Country::parse(["TH", "LA", "PH", "KG"][a % 4]).unwrap(),
            );
            for o in 0..OUTCOMES_PER_ACTION {
                let track = tracks[(a + o) % tracks.len()];
                let stages: Vec<_> = track.stages().collect();
                for e in 0..EVENTS_PER_OUTCOME {
                    seq += 1;
                    record.push(FoldEvent {
                        seq,
                        event_id: uuid::Uuid::from_u128(seq as u128),
                        occurred_on: chrono::NaiveDate::from_ymd_opt(
                            2015 + (e as i32),
                            1 + (o as u32),
                            1 + (a % 28) as u32,
                        )
                        .unwrap(),
                        recorded_at_us: seq as i64,
                        evidence_count: 1,
                        fact: Fact::Track {
                            outcome: OutcomeId::parse(&format!("outcome-{o}")).unwrap(),
                            stage: stages[(a + o + e) % stages.len()],
                            expected: None,
                            title: Some(format!("Outcome {o} of Action {a}")),
                        },
                    });
                }
            }
            record
        })
        .collect();
    let rules = ViewRules::default();
    let views_bytes: usize = records
        .iter()
        .map(|r| impact::store::encode_record(r).len())
        .sum();
    let before = rss_kib("self");
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let started = Instant::now();
    let filters = Filters {
        as_of: Some(as_of),
        until_seq: Some(seq),
        known_at: None,
    };
    // As the service does it (queries::compute_review): Action by Action into the report.
    let statuses = records
        .iter()
        .filter_map(|r| r.view(&filters, &rules))
        .map(|v| ActionStatus::new(v, &rules, as_of));
    let report = build_report(
        "bench".into(),
        &ReviewScope {
            as_of,
            until_seq: seq,
            country: None,
        },
        None,
        statuses,
    );
    let seconds = started.elapsed().as_secs_f64();
    let grown = rss_kib("self").saturating_sub(before);
    // As the service stores it (App::review_events): the report as JSON, in parts of about a
    // NATS message each when it does not fit one, and read back (joined) as GET returns it.
    let before_parts = rss_kib("self");
    let stored_started = Instant::now();
    let whole_bytes = serde_json::to_vec(&report).unwrap().len();
    let (head, parts) = report.clone().into_parts(PART_BYTES);
    let part_json: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| serde_json::to_vec(p).unwrap())
        .collect();
    let largest_part = part_json.iter().map(Vec::len).max().unwrap_or(0);
    let read_back: Vec<ReviewPart> = part_json
        .iter()
        .map(|json| serde_json::from_slice(json).unwrap())
        .collect();
    let joined = head.joined(read_back);
    let stored_seconds = stored_started.elapsed().as_secs_f64();
    let parts_grown = rss_kib("self").saturating_sub(before_parts);
    assert_eq!(joined, report, "the parts join to the report");
    // Measured after the review, so its allocations cannot reuse memory freed here.
    let as_of_date = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let views_json_bytes: usize = records
        .iter()
        .filter_map(|r| r.view(&Filters::default(), &rules))
        .map(|v| {
            serde_json::to_vec(&ActionStatus::new(v, &rules, as_of_date))
                .unwrap()
                .len()
        })
        .sum();
    println!(
        "review over {ACTIONS} Actions, {} outcomes ({} events), {cores} cores",
        report.totals.outcomes, seq
    );
    println!(
        "review time:                 {:>8.3} s (target <= 1 s); {} findings, {} highlights",
        seconds,
        report.findings.len(),
        report.highlights.len()
    );
    println!(
        "stored in parts:             {:>8.3} s to write {} parts (largest {} KiB) of a {} KiB report and join them again; RSS growth {parts_grown} KiB = {:.2}x the report's JSON",
        stored_seconds,
        part_json.len(),
        largest_part / 1024,
        whole_bytes / 1024,
        parts_grown as f64 / (whole_bytes as f64 / 1024.0)
    );
    println!(
        "review's RSS growth {grown} KiB: {:.2}x the views as served (JSON, {} KiB), {:.2}x the records they fold from ({} KiB); target <= 2x",
        grown as f64 / (views_json_bytes as f64 / 1024.0),
        views_json_bytes / 1024,
        grown as f64 / (views_bytes as f64 / 1024.0),
        views_bytes / 1024
    );
}
