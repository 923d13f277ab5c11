//! Property: for random event sequences over a few Actions (arrival out of date order,
//! retractions, duplicates, conflicts), through the real writer into a real sled store,
//! - the stored view equals the fold of the log,
//! - a rebuild gives byte-identical views, also when it writes its records after every fact,
//! - the view under `until_seq = N` equals the view the store held right after `seq` N.

use impact::domain::fold::{ActionRecord, Filters, ViewRules};
use impact::domain::ids::ActionId;
use impact::domain::rules::fact_from_stored;
use impact::domain::validate::{Origin, Schemas};
use impact::ingest::{Incoming, ItemOutcome, Payload, Source, Writer};
use impact::metrics::Metrics;
use impact::store::Store;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const ACTIONS: [&str; 3] = ["MIEUX-TH-0001", "MIEUX-LA-0002", "MIEUX-PH-0003"];
const COUNTRIES: [&str; 3] = ["TH", "LA", "PH"];
const OUTCOMES: [&str; 3] = ["law", "net", "practice"];
const TYPES: [&str; 12] = [
    "legislation.drafting",
    "legislation.pending",
    "legislation.adopted",
    "legislation.implemented",
    "legislation.stalled",
    "network.created",
    "network.active",
    "network.dormant",
    "outcome.verified",
    "outcome.disputed",
    "outcome.expectation_revised",
    "action.registered",
];

#[derive(Clone, Debug)]
enum Op {
    /// A new event: Action, outcome, type, day offset.
    New(usize, usize, usize, u16),
    /// Retract the k-th event submitted so far.
    Retract(usize),
    /// Submit the k-th event again, unchanged.
    Duplicate(usize),
    /// Submit the k-th event's id with other content.
    Conflict(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..3usize, 0..TYPES.len(), 0..3000u16).prop_map(|(a, o, t, d)| Op::New(a, o, t, d)),
        1 => any::<usize>().prop_map(Op::Retract),
        1 => any::<usize>().prop_map(Op::Duplicate),
        1 => any::<usize>().prop_map(Op::Conflict),
    ]
}

fn date(offset: u16) -> String {
    (chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap() + chrono::Duration::days(offset as i64))
        .to_string()
}

fn event_for(op: &Op, submitted: &[Value], n: usize) -> Option<Value> {
    let id = uuid::Uuid::from_u128(n as u128 + 1).to_string();
    Some(match *op {
        Op::New(a, o, t, d) => {
            let event_type = TYPES[t];
            let mut event = json!({"event_id": id, "type": event_type, "action_id": ACTIONS[a], "country": COUNTRIES[a], "occurred_on": date(d), "reported_by": "prop", "data": {}});
            match event_type {
                "action.registered" => {
                    event["data"] =
                        json!({"title": "t", "modality": "training", "partner_institutions": []})
                }
                "outcome.verified" => event["data"] = json!({"by": "x"}),
                "outcome.disputed" => event["data"] = json!({"by": "x", "reason": "y"}),
                "outcome.expectation_revised" => {
                    event["data"] = json!({"expected": {"stage": "adopted", "by": date(d + 200)}, "reason": "r"})
                }
                _ if d % 3 == 0 => {
                    event["data"] = json!({"expected": {"stage": "implemented", "by": date(d + 100)}, "title": format!("title {n}")})
                }
                _ => {}
            }
            if event_type != "action.registered" {
                event["outcome_id"] = json!(OUTCOMES[o]);
            }
            event
        }
        Op::Retract(k) => {
            let target = submitted.get(k % submitted.len().max(1))?;
            json!({"event_id": id, "type": "event.retracted", "action_id": target["action_id"], "country": target["country"], "occurred_on": date(2999), "reported_by": "prop", "data": {"target_event_id": target["event_id"], "reason": "r"}})
        }
        Op::Duplicate(k) => submitted.get(k % submitted.len().max(1))?.clone(),
        Op::Conflict(k) => {
            let mut changed = submitted.get(k % submitted.len().max(1))?.clone();
            changed["reported_by"] = json!("someone else");
            changed
        }
    })
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 8 << 20).unwrap();
    let schemas = Arc::new(Schemas::load());
    let (writer, thread) =
        Writer::spawn(store.clone(), schemas.clone(), Arc::new(Metrics::new())).unwrap();
    let rules = ViewRules::default();
    let mut submitted: Vec<Value> = Vec::new();
    // (action, seq) → the stored view's JSON right after that seq was appended.
    let mut held: BTreeMap<(String, u64), Option<String>> = BTreeMap::new();
    let mut last_seq = 0;
    for (n, op) in ops.iter().enumerate() {
        let Some(event) = event_for(op, &submitted, n) else {
            continue;
        };
        let parsed = match schemas.parse_value(event.clone(), Origin::Client) {
            Ok(parsed) => parsed,
            Err(_) => continue,
        };
        let incoming = Incoming {
            payload: Payload::Parsed(Box::new(parsed)),
            origin: Origin::Client,
            source: Source::Http,
            submitted_by: None,
        };
        let outcome = writer
            .blocking_submit(vec![incoming], false)
            .unwrap()
            .remove(0);
        match outcome {
            ItemOutcome::Applied { seq } => {
                prop_assert_eq!(seq, last_seq + 1, "seq is contiguous");
                last_seq = seq;
                submitted.push(event);
                for action in ACTIONS {
                    let view = store
                        .record(&ActionId::parse(action).unwrap())
                        .unwrap()
                        .and_then(|record| record.view(&Filters::default(), &rules));
                    held.insert(
                        (action.to_owned(), seq),
                        view.map(|view| serde_json::to_string(&view).unwrap()),
                    );
                }
            }
            ItemOutcome::Duplicate { .. } => prop_assert!(matches!(op, Op::Duplicate(_))),
            ItemOutcome::Rejected(rejection) => {
                if matches!(op, Op::Conflict(_)) {
                    prop_assert_eq!(rejection.code.as_str(), "event_id_conflict");
                }
            }
        }
    }
    drop(writer);
    thread.join().unwrap();

    // The stored views equal the fold of the log.
    let mut folded: HashMap<ActionId, ActionRecord> = HashMap::new();
    for item in store.log_after(0) {
        let (_, json) = item.unwrap();
        if let Some(logged) = fact_from_stored(&json, |id| folded.get(id).cloned()).unwrap() {
            folded
                .entry(logged.action_id.clone())
                .or_insert_with(|| ActionRecord::new(logged.action_id, logged.country))
                .push(logged.event);
        }
    }
    for action in ACTIONS {
        let id = ActionId::parse(action).unwrap();
        prop_assert_eq!(store.record(&id).unwrap(), folded.get(&id).cloned());
        // Under until_seq = N: the view the store held right after N.
        for seq in 1..=last_seq {
            let travelled = store
                .record(&id)
                .unwrap()
                .and_then(|record| {
                    record.view(
                        &Filters {
                            until_seq: Some(seq),
                            ..Filters::default()
                        },
                        &rules,
                    )
                })
                .map(|view| serde_json::to_string(&view).unwrap());
            prop_assert_eq!(
                &travelled,
                &held[&(action.to_owned(), seq)],
                "{} at seq {}",
                action,
                seq
            );
        }
    }

    // A rebuild gives byte-identical views.
    let before: Vec<_> = store.record_bytes().map(Result::unwrap).collect();
    drop(store);
    impact::commands::rebuild(dir.path(), false).unwrap();
    let store = Store::open(dir.path(), 8 << 20).unwrap();
    let after: Vec<_> = store.record_bytes().map(Result::unwrap).collect();
    prop_assert!(before == after, "rebuild is byte-identical");

    // So is a rebuild that may hold almost nothing and writes its records after every fact,
    // appending to what it wrote before (the path a log too big for its memory takes).
    drop(store);
    impact::commands::rebuild_within(dir.path(), false, 1, 0).unwrap();
    let store = Store::open(dir.path(), 8 << 20).unwrap();
    let spilled: Vec<_> = store.record_bytes().map(Result::unwrap).collect();
    prop_assert!(
        before == spilled,
        "a rebuild in small steps is byte-identical"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn stored_views_equal_the_fold_of_the_log_at_every_position(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
