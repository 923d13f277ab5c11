//! The JetStream bus through real processes: a real `nats-server -js` per test and the real
//! service. Publishers here are plain async-nats clients sending raw bytes.

mod common;

use async_nats::jetstream;
use common::*;
use impact::store::Store;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn config_file(dir: &Path, nats: &NatsServer, extra: &str) -> String {
    config_with(dir, &format!("url = \"{}\"\n", nats.url()), extra)
}

fn config_for(dir: &Path, brokers: &Brokers, extra: &str) -> String {
    config_with(dir, &brokers.nats_lines(), extra)
}

fn config_with(dir: &Path, nats_lines: &str, extra: &str) -> String {
    let path = dir.join("impact.toml");
    std::fs::write(&path, format!("[nats]\n{nats_lines}duplicate_window_secs = 2\npublish_timeout_ms = 2000\n{extra}\n[review]\nschedule = \"off\"\n")).unwrap();
    path.to_string_lossy().into_owned()
}

async fn jetstream_for(nats: &NatsServer) -> jetstream::Context {
    jetstream::new(async_nats::connect(nats.url()).await.unwrap())
}

fn subject(event: &Value) -> String {
    format!(
        "impact.events.{}.{}",
        event["country"].as_str().unwrap(),
        event["action_id"].as_str().unwrap()
    )
}

/// Publishes raw bytes with `Nats-Msg-Id` and waits for the PubAck.
async fn publish(
    js: &jetstream::Context,
    subject: String,
    id: Option<&str>,
    payload: Vec<u8>,
) -> u64 {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(id) = id {
        headers.insert("Nats-Msg-Id", id);
    }
    js.publish_with_headers(subject, headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

/// The service on `nats` (test settings), ready; its data's temp dir lives as long as it.
async fn serving(nats: &NatsServer) -> (Service, reqwest::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config_file(dir.path(), nats, "")]);
    let http = client();
    wait_ready(&http, &service).await;
    (service, http, dir)
}

async fn wait_ready(http: &reqwest::Client, service: &Service) {
    let url = service.url("/readyz");
    eventually(30, async || {
        (http.get(&url).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
}

async fn log_position(http: &reqwest::Client, service: &Service) -> Option<u64> {
    let text = http
        .get(service.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("impact_log_position "))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test]
async fn events_published_straight_to_nats_show_in_the_views_and_a_wrong_subject_is_rejected() {
    let nats = NatsServer::start();
    let (service, http, _dir) = serving(&nats).await;
    let js = jetstream_for(&nats).await;
    let action = "MIEUX-TH-2014-01";
    let first = registered(action, "TH");
    let second = track(
        action,
        "TH",
        "vot-protocol",
        "legislation.pending",
        "2018-11-20",
    );
    for event in [&first, &second] {
        publish(
            &js,
            subject(event),
            event["event_id"].as_str(),
            event.to_string().into_bytes(),
        )
        .await;
    }
    let wrong = track(action, "TH", "other", "network.created", "2018-11-20");
    let wrong_seq = publish(
        &js,
        "impact.events.LA.MIEUX-TH-2014-01".into(),
        wrong["event_id"].as_str(),
        wrong.to_string().into_bytes(),
    )
    .await;

    let view = eventually(20, async || {
        let (status, view) = get_json(&http, &service.url(&format!("/v1/actions/{action}"))).await;
        (status == 200 && view["event_count"] == 2).then_some(view)
    })
    .await;
    assert_eq!(view["outcomes"][0]["stage"], "pending");
    let events = all_events(&http, &service).await;
    assert_eq!(events[0]["stream_seq"], 1);
    let rejections = eventually(20, async || {
        let (_, body) = get_json(&http, &service.url("/v1/rejections")).await;
        (!body["rejections"].as_array()?.is_empty()).then_some(body)
    })
    .await;
    let rejection = &rejections["rejections"][0];
    assert_eq!(rejection["code"], "subject_mismatch");
    assert_eq!(rejection["source"], "nats");
    assert_eq!(rejection["subject"], "impact.events.LA.MIEUX-TH-2014-01");
    assert_eq!(rejection["stream_seq"], wrong_seq);
    assert_eq!(rejection["event_id"], wrong["event_id"]);
    assert_eq!(
        serde_json::from_str::<Value>(rejection["raw"].as_str().unwrap()).unwrap(),
        wrong
    );
}

#[tokio::test]
async fn http_submissions_go_through_the_stream_and_wait_true_reads_its_writes() {
    let nats = NatsServer::start();
    let (service, http, _dir) = serving(&nats).await;
    let action = "MIEUX-KG-2018-06";
    let body = json!([
        registered(action, "KG"),
        track(action, "KG", "policy", "policy.drafting", "2018-10-01")
    ]);
    let (status, answer) = post_json(&http, &service.url("/v1/events?wait=true"), &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["results"][0]["stream_seq"], 1);
    assert_eq!(answer["results"][1]["seq"], 2);
    let (_, view) = get_json(&http, &service.url(&format!("/v1/actions/{action}"))).await;
    assert_eq!(view["last_seq"], 2);

    // Already in the log: a duplicate, without a second publish.
    let (status, again) = post_json(&http, &service.url("/v1/events?wait=true"), &body).await;
    assert_eq!(status, 202);
    assert_eq!(again["results"][0]["status"], "duplicate");
    assert_eq!(again["results"][1]["seq"], 2);
    // Checked against the log before publishing: a bad body publishes nothing.
    let bad = json!([track(
        action,
        "KG",
        "policy",
        "network.created",
        "2019-01-01"
    )]);
    let (status, refused) = post_json(&http, &service.url("/v1/events"), &bad).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("track_mismatch"))
    );
    let js = jetstream_for(&nats).await;
    let mut stream = js.get_stream("IMPACT").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn readiness_follows_the_broker_and_a_submission_without_it_is_503() {
    let mut nats = NatsServer::start();
    let (service, http, _dir) = serving(&nats).await;
    nats.kill();
    eventually(20, async || {
        (http.get(service.url("/readyz")).send().await.ok()?.status() == 503).then_some(())
    })
    .await;
    let event = registered("MIEUX-TH-2014-01", "TH");
    let (status, body) = post_json(&http, &service.url("/v1/events"), &event).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    nats.restart();
    wait_ready(&http, &service).await;
    let (status, answer) = post_json(&http, &service.url("/v1/events?wait=true"), &event).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["results"][0]["seq"], 1,
        "the refused attempt stored nothing"
    );
}

#[tokio::test]
async fn events_published_again_after_the_dedupe_window_are_applied_once() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(&["--config", &config_file(dir.path(), &nats, "")]);
    let http = client();
    wait_ready(&http, &service).await;
    let js = jetstream_for(&nats).await;
    let events: Vec<Value> = (0..20)
        .map(|n| registered(&format!("MIEUX-TH-{n:04}"), "TH"))
        .collect();
    for event in &events {
        publish(
            &js,
            subject(event),
            event["event_id"].as_str(),
            event.to_string().into_bytes(),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await; // past the 2 s window
    for event in &events {
        publish(
            &js,
            subject(event),
            event["event_id"].as_str(),
            event.to_string().into_bytes(),
        )
        .await;
    }
    let mut stream = js.get_stream("IMPACT").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        40,
        "the stream holds both copies"
    );
    eventually(20, async || {
        (log_position(&http, &service).await? == 20).then_some(())
    })
    .await;
    // A restart replays nothing twice either.
    service.kill9();
    service.restart();
    wait_ready(&http, &service).await;
    let metrics = get_text(&http, &service.url("/metrics")).await;
    assert!(metrics.contains("impact_log_position 20"), "{metrics}");
    assert_eq!(all_events(&http, &service).await.len(), 20);
}

/// Publishes `count` valid events with PubAcks, in windows, and returns their ids.
async fn publish_stream_of_events(js: jetstream::Context, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    let mut window = Vec::new();
    for n in 0..count {
        let action = format!("MIEUX-TH-{:05}", n % 500);
        let event = if n < 500 {
            registered(&action, "TH")
        } else {
            track(
                &action,
                "TH",
                &format!("o-{}", n % 7),
                "practice.applied",
                "2020-01-01",
            )
        };
        let id = event["event_id"].as_str().unwrap().to_owned();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        loop {
            match js
                .publish_with_headers(subject(&event), headers.clone(), event.to_string().into())
                .await
            {
                Ok(ack) => {
                    window.push((id.clone(), ack));
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        if window.len() == 256 || n + 1 == count {
            for (id, ack) in window.drain(..) {
                if ack.await.is_ok() {
                    ids.push(id);
                }
            }
        }
    }
    ids
}

/// Every PubAcked id in the log exactly once, `seq` contiguous, views equal to a rebuild.
async fn assert_log_is_exact(data_dir: &Path, acked: &[String]) {
    let store = Store::open(data_dir, 16 << 20).unwrap();
    let mut seen = HashSet::new();
    for (expected_seq, item) in (1..).zip(store.log_after(0)) {
        let (seq, json) = item.unwrap();
        assert_eq!(seq, expected_seq, "seq is contiguous");
        let event: Value = serde_json::from_slice(&json).unwrap();
        assert!(
            seen.insert(event["event_id"].as_str().unwrap().to_owned()),
            "an event applied twice"
        );
    }
    for id in acked {
        assert!(seen.contains(id), "PubAcked event {id} is not in the log");
    }
    let before: HashMap<Vec<u8>, Vec<u8>> = store.record_bytes().map(Result::unwrap).collect();
    drop(store);
    impact::commands::rebuild(data_dir, false).unwrap();
    let store = Store::open(data_dir, 16 << 20).unwrap();
    let after: HashMap<Vec<u8>, Vec<u8>> = store.record_bytes().map(Result::unwrap).collect();
    assert_eq!(before.len(), after.len());
    assert!(
        before == after,
        "every view equals a fresh rebuild, byte for byte"
    );
}

/// The crash loop: SIGKILL the service at random moments while events are published.
pub async fn crash_loop(kills: usize, events: usize, brokers: Brokers) {
    brokers.jetstream_ready().await;
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(&["--config", &config_for(dir.path(), &brokers, "")]);
    let http = client();
    wait_ready(&http, &service).await;
    let publisher = tokio::spawn(publish_stream_of_events(brokers.jetstream().await, events));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(20 + seed % 150)).await;
        service.kill9();
        service.restart();
    }
    let acked = publisher.await.unwrap();
    assert_eq!(acked.len(), events);
    wait_ready(&http, &service).await;
    eventually(120, async || {
        (log_position(&http, &service).await? as usize == events).then_some(())
    })
    .await;
    service.kill9();
    assert_log_is_exact(&service.data_dir, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_service_twenty_times_during_ingest_loses_and_doubles_nothing() {
    let kills = std::env::var("IMPACT_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    crash_loop(kills, 50_000, Brokers::single()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_service_during_ingest_from_an_r3_cluster_loses_and_doubles_nothing() {
    crash_loop(10, 20_000, Brokers::cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_broker_during_ingest_loses_and_doubles_nothing() {
    broker_kill(Brokers::single()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_stream_leader_of_a_cluster_during_ingest_loses_and_doubles_nothing() {
    broker_kill(Brokers::cluster()).await;
}

/// Kills the server leading the stream between two runs of publishing, then restarts it.
async fn broker_kill(mut brokers: Brokers) {
    brokers.jetstream_ready().await;
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(&["--config", &config_for(dir.path(), &brokers, "")]);
    let http = client();
    wait_ready(&http, &service).await;
    let first = publish_stream_of_events(brokers.jetstream().await, 10_000).await;
    let leader = brokers.leader().await;
    brokers.servers[leader].kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    brokers.servers[leader].restart();
    let second = publish_stream_of_events(brokers.jetstream().await, 5_000).await;
    wait_ready(&http, &service).await;
    // Some of the second run's registrations repeat the first run's Actions: those are new
    // event ids for existing Actions, all valid.
    let total = first.len() + second.len();
    eventually(120, async || {
        (log_position(&http, &service).await? as usize == total).then_some(())
    })
    .await;
    service.kill9();
    let acked: Vec<String> = first.into_iter().chain(second).collect();
    assert_log_is_exact(&service.data_dir, &acked).await;
}

#[tokio::test]
async fn poison_messages_of_every_kind_are_kept_aside_in_one_pass() {
    poison(Brokers::single()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_on_an_r3_cluster_are_kept_aside_in_one_pass() {
    poison(Brokers::cluster()).await;
}

async fn poison(brokers: Brokers) {
    brokers.jetstream_ready().await;
    let js = brokers.jetstream().await;
    // The stream is filled before the service starts, so one pass reads it all.
    eventually(30, async || {
        js.get_or_create_stream(jetstream::stream::Config {
            name: "IMPACT".into(),
            subjects: vec!["impact.events.>".into(), "impact.reviews.>".into()],
            num_replicas: brokers.servers.len(),
            ..Default::default()
        })
        .await
        .ok()
    })
    .await;
    let action = "MIEUX-TH-2014-01";
    let base = track(
        action,
        "TH",
        "vot-protocol",
        "legislation.pending",
        "2018-11-20",
    );
    publish(&js, subject(&base), None, base.to_string().into_bytes()).await;
    let mut valid = 1;
    let mut bad = 0;
    let kinds = 14;
    for n in 0..1100 {
        if n % 11 != 10 {
            if valid < 1000 {
                let event = track(
                    action,
                    "TH",
                    &format!("o-{n}"),
                    "practice.awareness",
                    "2019-01-01",
                );
                publish(&js, subject(&event), None, event.to_string().into_bytes()).await;
                valid += 1;
            }
            continue;
        }
        let poison: (String, Vec<u8>) = match bad % kinds {
            0 => (subject(&base), b"{not json".to_vec()),
            1 => (subject(&base), vec![0xff, 0xfe, 0x00]),
            2 => {
                let mut big = registered(action, "TH");
                big["data"]["title"] = json!("x".repeat(70_000));
                (subject(&big), big.to_string().into_bytes())
            }
            3 => {
                let mut missing = registered(action, "TH");
                missing.as_object_mut().unwrap().remove("reported_by");
                (subject(&missing), missing.to_string().into_bytes())
            }
            4 => {
                let unknown = track(action, "TH", "x1", "practice.celebrated", "2019-01-01");
                (subject(&unknown), unknown.to_string().into_bytes())
            }
            5 => {
                let mut review = event(
                    "review.completed",
                    "REVIEW",
                    "XX",
                    None,
                    "2019-01-01",
                    json!({"review_id": "x"}),
                );
                review["data"] = json!({"review_id": "x"});
                (
                    "impact.events.XX.REVIEW".into(),
                    review.to_string().into_bytes(),
                )
            }
            6 => {
                let mismatch = registered(action, "TH");
                (
                    "impact.events.TH.MIEUX-OTHER-01".into(),
                    mismatch.to_string().into_bytes(),
                )
            }
            7 => {
                let elsewhere = track(action, "LA", "x2", "practice.awareness", "2019-01-01");
                (
                    "impact.events.LA.MIEUX-TH-2014-01".into(),
                    elsewhere.to_string().into_bytes(),
                )
            }
            8 => {
                let other_track = track(
                    action,
                    "TH",
                    "vot-protocol",
                    "policy.ratified",
                    "2019-01-01",
                );
                (subject(&other_track), other_track.to_string().into_bytes())
            }
            9 => {
                let unknown_outcome = event(
                    "outcome.expectation_revised",
                    action,
                    "TH",
                    Some("nobody"),
                    "2019-01-01",
                    json!({"expected": {"stage": "adopted", "by": "2020-01-01"}, "reason": "?"}),
                );
                (
                    subject(&unknown_outcome),
                    unknown_outcome.to_string().into_bytes(),
                )
            }
            10 => {
                let invalid = event(
                    "legislation.adopted",
                    action,
                    "TH",
                    Some("vot-protocol"),
                    "2019-01-01",
                    json!({"expected": {"stage": "stalled", "by": "2020-01-01"}}),
                );
                (subject(&invalid), invalid.to_string().into_bytes())
            }
            11 => {
                let retraction = event(
                    "event.retracted",
                    action,
                    "TH",
                    None,
                    "2019-01-01",
                    json!({"target_event_id": new_id(), "reason": "?"}),
                );
                (subject(&retraction), retraction.to_string().into_bytes())
            }
            12 => {
                let future = track(action, "TH", "x3", "practice.awareness", "2099-01-01");
                (subject(&future), future.to_string().into_bytes())
            }
            _ => {
                let mut conflict = base.clone();
                conflict["occurred_on"] = json!("2018-11-21");
                (subject(&conflict), conflict.to_string().into_bytes())
            }
        };
        publish(&js, poison.0, None, poison.1).await;
        bad += 1;
    }
    assert_eq!((valid, bad), (1000, 100));

    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config_for(dir.path(), &brokers, "")]);
    let http = client();
    eventually(60, async || {
        (log_position(&http, &service).await? == 1000).then_some(())
    })
    .await;
    let (_, body) = get_json(&http, &service.url("/v1/rejections?limit=1000")).await;
    let rejections = body["rejections"].as_array().unwrap();
    assert_eq!(rejections.len(), 100);
    let codes: HashSet<&str> = rejections
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    for code in [
        "malformed_json",
        "payload_too_large",
        "schema_violation",
        "unknown_type",
        "forbidden_type",
        "subject_mismatch",
        "country_mismatch",
        "track_mismatch",
        "outcome_unknown",
        "expected_stage_invalid",
        "retraction_target_unknown",
        "occurred_in_future",
        "event_id_conflict",
    ] {
        assert!(codes.contains(code), "no {code} among {codes:?}");
    }
    let non_utf8 = rejections
        .iter()
        .find(|r| r["raw_encoding"] == "base64")
        .expect("the non-UTF-8 payload is kept as base64");
    assert_eq!(non_utf8["raw"], "//4A");
    let metrics = get_text(&http, &service.url("/metrics")).await;
    assert!(
        metrics.contains("impact_events_applied_total 1000"),
        "{metrics}"
    );
}

/// The content stored for `event_id`, once the service has it (polled through the log).
async fn stored_event(http: &reqwest::Client, service: &Service, event_id: &str) -> Value {
    eventually(30, async || {
        all_events(http, service)
            .await
            .into_iter()
            .find(|event| event["event_id"] == event_id)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_id_with_other_content_is_never_answered_duplicate() {
    let nats = NatsServer::start();
    let (service, http, _dir) = serving(&nats).await;
    let action = "MIEUX-TH-2015-02";
    let (status, _) = post_json(
        &http,
        &service.url("/v1/events?wait=true"),
        &registered(action, "TH"),
    )
    .await;
    assert_eq!(status, 202);
    // The same id, a different title per client: only the stored content may be answered
    // `accepted` or `duplicate`; every other must be `409 event_id_conflict`.
    let variant = |id: &str, n: usize| {
        let mut event = track(
            action,
            "TH",
            &format!("o-{id}"),
            "network.created",
            "2016-01-01",
        );
        event["event_id"] = json!(id);
        event["data"] = json!({"title": format!("variant {n}")});
        event
    };
    let check = async |id: &str, answers: Vec<(usize, u16, Value)>| {
        let stored = stored_event(&http, &service, id).await;
        let mut stored_answers = 0;
        for (n, status, answer) in answers {
            let is_stored = stored["data"]["title"] == format!("variant {n}");
            match (status, answer["results"][0]["status"].as_str()) {
                (202, Some("accepted" | "duplicate")) => {
                    assert!(
                        is_stored,
                        "variant {n} was answered {answer} but not stored"
                    );
                    stored_answers += 1;
                }
                (409, _) => {
                    assert!(!is_stored, "the stored variant {n} got 409");
                    assert_eq!(answer["error"]["code"], "event_id_conflict", "{answer}");
                }
                other => panic!("variant {n}: {other:?} {answer}"),
            }
        }
        assert_eq!(stored_answers, 1, "the stored content was answered once");
    };
    // Right after one another, from one client.
    for _ in 0..20 {
        let id = new_id();
        let mut answers = Vec::new();
        for n in 0..2 {
            let (status, answer) =
                post_json(&http, &service.url("/v1/events"), &variant(&id, n)).await;
            answers.push((n, status, answer));
        }
        check(&id, answers).await;
    }
    // 32 clients at once.
    for _ in 0..5 {
        let id = new_id();
        let posts = (0..32).map(|n| {
            let (http, url, body) = (http.clone(), service.url("/v1/events"), variant(&id, n));
            tokio::spawn(async move {
                let (status, answer) = post_json(&http, &url, &body).await;
                (n, status, answer)
            })
        });
        let answers = futures::future::join_all(posts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        check(&id, answers).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_posting_to_one_action_read_their_own_writes_and_never_fail() {
    let nats = NatsServer::start();
    let (service, http, _dir) = serving(&nats).await;
    let action = "MIEUX-PH-2016-04";
    let (status, _) = post_json(
        &http,
        &service.url("/v1/events?wait=true"),
        &registered(action, "PH"),
    )
    .await;
    assert_eq!(status, 202);
    // Each client reports an outcome, then verifies it at once, without `wait`: the check
    // before publishing must see the client's own accepted event, and never a torn record.
    let clients = (0..8).map(|client_no| {
        let (http, url) = (http.clone(), service.url("/v1/events"));
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for round in 0..15 {
                let outcome = format!("o-{client_no}-{round}");
                let first = track(action, "PH", &outcome, "network.created", "2017-01-01");
                let then = event(
                    "outcome.verified",
                    action,
                    "PH",
                    Some(&outcome),
                    "2017-02-01",
                    json!({"by": "programme evaluator"}),
                );
                for body in [first, then] {
                    answers.push(post_json(&http, &url, &body).await);
                }
            }
            answers
        })
    });
    for answers in futures::future::join_all(clients).await {
        for (status, answer) in answers.unwrap() {
            assert_eq!(status, 202, "{answer}");
        }
    }
}

#[tokio::test]
async fn a_field_office_publishing_straight_to_nats_is_held_to_its_own_rights() {
    let nats = NatsServer::start();
    let (service, http, _dir) = serving(&nats).await;
    let js = jetstream_for(&nats).await;
    let action = "MIEUX-TH-2014-01";
    // Through the API (the service publishes on `impact.submitted.…`): an evaluator's dispute.
    let base = track(
        action,
        "TH",
        "vot-protocol",
        "legislation.pending",
        "2018-11-20",
    );
    let dispute = event(
        "outcome.disputed",
        action,
        "TH",
        Some("vot-protocol"),
        "2019-01-01",
        json!({"by": "evaluator", "reason": "no copy of the protocol"}),
    );
    let (status, answer) = post_json(
        &http,
        &service.url("/v1/events?wait=true"),
        &json!([registered(action, "TH"), base.clone(), dispute.clone()]),
    )
    .await;
    assert_eq!(status, 202, "{answer}");

    // Straight to `impact.events.TH.…`, as a field office: a verification (not its type), a
    // retraction of the evaluator's dispute, and its own event claiming to be from an admin.
    let verify = event(
        "outcome.verified",
        action,
        "TH",
        Some("vot-protocol"),
        "2019-02-01",
        json!({"by": "field office"}),
    );
    let withdraw = event(
        "event.retracted",
        action,
        "TH",
        None,
        "2019-02-02",
        json!({"target_event_id": dispute["event_id"], "reason": "we disagree"}),
    );
    let own = track(action, "TH", "circles", "practice.awareness", "2019-03-01");
    for message in [&verify, &withdraw] {
        publish(
            &js,
            subject(message),
            None,
            message.to_string().into_bytes(),
        )
        .await;
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Impact-Submitted-By", "admin");
    js.publish_with_headers(subject(&own), headers, own.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A review on its subject for a slot still to come.
    let mut review = event(
        "review.completed",
        "REVIEW",
        "XX",
        None,
        "2019-01-01",
        json!({}),
    );
    let (status, mut future) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"as_of": "2019-06-01"}),
    )
    .await;
    assert_eq!(status, 201, "{future}");
    future["review_id"] = json!("scheduled-20990101T0300Z");
    future["schedule_slot"] = json!("2099-01-01T03:00:00Z");
    review["data"] = future;
    publish(
        &js,
        "impact.reviews.scheduled-20990101T0300Z".into(),
        None,
        review.to_string().into_bytes(),
    )
    .await;

    let (_, body) = eventually(30, async || {
        let (status, body) = get_json(&http, &service.url("/v1/rejections")).await;
        (body["rejections"].as_array()?.len() >= 3).then_some((status, body))
    })
    .await;
    let rejections = body["rejections"].as_array().unwrap();
    let code_of = |event: &Value| {
        rejections
            .iter()
            .find(|r| r["event_id"] == event["event_id"])
            .map(|r| r["code"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        code_of(&verify).as_deref(),
        Some("forbidden_type"),
        "{body}"
    );
    assert_eq!(
        code_of(&withdraw).as_deref(),
        Some("forbidden_type"),
        "{body}"
    );
    assert_eq!(
        code_of(&review).as_deref(),
        Some("schema_violation"),
        "{body}"
    );
    assert_eq!(code_of(&own), None);
    let events = all_events(&http, &service).await;
    let stored = events
        .iter()
        .find(|e| e["event_id"] == own["event_id"])
        .expect("a field office's own event is applied");
    assert_eq!(
        stored["submitted_by"],
        Value::Null,
        "the header is not believed there"
    );
    let (_, view) = get_json(&http, &service.url(&format!("/v1/actions/{action}"))).await;
    let outcome = view["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["outcome_id"] == "vot-protocol")
        .unwrap();
    assert_eq!(outcome["verification"], "disputed", "{view}");
}

#[tokio::test]
async fn a_stream_deleted_and_created_again_is_refused_at_start_not_skipped() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &nats, "");
    let mut service = Service::start(&["--config", &config]);
    let http = client();
    wait_ready(&http, &service).await;
    let action = "MIEUX-TH-2014-01";
    let (status, _) = post_json(
        &http,
        &service.url("/v1/events?wait=true"),
        &json!([
            registered(action, "TH"),
            track(
                action,
                "TH",
                "focal-points",
                "network.created",
                "2019-01-01"
            )
        ]),
    )
    .await;
    assert_eq!(status, 202);
    service.terminate();

    // Someone deletes the stream and it is created again: its sequence starts over at 1.
    let js = jetstream_for(&nats).await;
    js.delete_stream("IMPACT").await.unwrap();
    js.create_stream(jetstream::stream::Config {
        name: "IMPACT".into(),
        subjects: vec![
            "impact.events.>".into(),
            "impact.submitted.>".into(),
            "impact.reviews.>".into(),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    for n in 0..3 {
        let event = track(
            action,
            "TH",
            &format!("new-{n}"),
            "network.created",
            "2019-02-01",
        );
        publish(&js, subject(&event), None, event.to_string().into_bytes()).await;
    }
    let started = std::process::Command::new(binary())
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--config",
            &config,
            "--data-dir",
        ])
        .arg(&service.data_dir)
        .output()
        .unwrap();
    assert!(!started.status.success());
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(
        stderr.contains("deleted and created again") && stderr.contains("empty data directory"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_review_for_a_slot_to_come_is_rejected_and_the_real_one_is_written_then() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impact.toml");
    std::fs::write(
        &path,
        format!(
            "[nats]\nurl = \"{}\"\n[review]\nschedule = \"* * * * *\"\n",
            nats.url()
        ),
    )
    .unwrap();
    let service = Service::start(&["--config", path.to_str().unwrap()]);
    let http = client();
    wait_ready(&http, &service).await;
    // The start's catch-up writes this minute's review; copy it as the forger would.
    let current = eventually(30, async || {
        let (_, list) = get_json(&http, &service.url("/v1/reviews")).await;
        list["reviews"].as_array()?.first()?["review_id"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let (_, mut forged) = get_json(&http, &service.url(&format!("/v1/reviews/{current}"))).await;
    let now = chrono::Utc::now();
    // The next slot, or the one after when the next is only seconds away (the forgery must
    // arrive before its slot does).
    let ahead = if now.timestamp() % 60 > 45 { 2 } else { 1 };
    let next =
        now - chrono::Duration::seconds(now.timestamp() % 60) + chrono::Duration::minutes(ahead);
    let next_id = format!("scheduled-{}", next.format("%Y%m%dT%H%MZ"));
    forged["review_id"] = json!(next_id);
    forged["schedule_slot"] = json!(next.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    forged["findings"] = json!([{"action_id": "MIEUX-TH-9999", "outcome_id": null, "flag": "stale", "detail": "forged"}]);
    let mut review = event(
        "review.completed",
        "REVIEW",
        "XX",
        None,
        "2026-01-01",
        json!({}),
    );
    review["data"] = forged;
    let js = jetstream_for(&nats).await;
    publish(
        &js,
        format!("impact.reviews.{next_id}"),
        None,
        review.to_string().into_bytes(),
    )
    .await;
    let rejected = eventually(20, async || {
        let (_, body) = get_json(&http, &service.url("/v1/rejections")).await;
        body["rejections"]
            .as_array()?
            .iter()
            .find(|r| r["event_id"] == review["event_id"])
            .cloned()
    })
    .await;
    assert_eq!(rejected["code"], "schema_violation", "{rejected}");
    // When the slot comes, the service writes its own review under that id.
    let (status, real) = eventually(150, async || {
        let (status, real) = get_json(&http, &service.url(&format!("/v1/reviews/{next_id}"))).await;
        (status == 200).then_some((status, real))
    })
    .await;
    assert_eq!(status, 200);
    assert!(
        real["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["detail"] != "forged"),
        "{real}"
    );
}

/// A TCP proxy in front of nats-server that, while `hold` is set, drops the stream's messages
/// on their way to the client (`HMSG`/`MSG` frames whose reply subject is `$JS.ACK.…`) and
/// passes everything else: heartbeats, API replies, PINGs. A consumer behind it hears nothing
/// while its connection and the stream stay healthy: a stall, as on a dead consumer node.
async fn stream_holding_proxy(upstream: u16) -> (u16, Arc<std::sync::atomic::AtomicBool>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holding = hold.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let holding = holding.clone();
            tokio::spawn(async move {
                let mut from_server = BufReader::new(server_read);
                let mut line = String::new();
                loop {
                    line.clear();
                    if from_server.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let (frame, payload_len) = match words.first().copied() {
                        // HMSG subject sid [reply] header_len total_len
                        Some("HMSG") => (true, words.last().and_then(|n| n.parse::<usize>().ok())),
                        // MSG subject sid [reply] len
                        Some("MSG") => (true, words.last().and_then(|n| n.parse::<usize>().ok())),
                        _ => (false, None),
                    };
                    let mut payload = Vec::new();
                    if let (true, Some(len)) = (frame, payload_len) {
                        payload.resize(len + 2, 0);
                        if from_server.read_exact(&mut payload).await.is_err() {
                            return;
                        }
                    }
                    let replies_to_ack = words.get(3).is_some_and(|w| w.starts_with("$JS.ACK."));
                    if frame && replies_to_ack && holding.load(std::sync::atomic::Ordering::Relaxed)
                    {
                        continue; // A stream message: dropped while holding.
                    }
                    if client_write.write_all(line.as_bytes()).await.is_err()
                        || client_write.write_all(&payload).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, hold)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_makes_the_instance_unready_until_it_recovers() {
    let nats = NatsServer::start();
    let (proxy, hold) = stream_holding_proxy(nats.port).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        &format!("url = \"nats://127.0.0.1:{proxy}\"\n"),
        "stall_ms = 1500",
    );
    let service = Service::start(&["--config", &config]);
    let http = client();
    wait_ready(&http, &service).await;
    let js = jetstream_for(&nats).await;
    let action = "MIEUX-TH-2014-01";
    hold.store(true, std::sync::atomic::Ordering::Relaxed);
    for n in 0..5 {
        let event = track(
            action,
            "TH",
            &format!("o-{n}"),
            "network.created",
            "2019-01-01",
        );
        publish(&js, subject(&event), None, event.to_string().into_bytes()).await;
    }
    let stalled = eventually(15, async || {
        let (status, ready) = get_json(&http, &service.url("/readyz")).await;
        (status == 503 && ready["consumer"] == "stalled").then_some(ready)
    })
    .await;
    assert_eq!(stalled["consumer_lag"], 5, "{stalled}");
    let metrics = get_text(&http, &service.url("/metrics")).await;
    assert!(metrics.contains("impact_consumer_lag 5"), "{metrics}");
    // The messages flow again: the consumer notices the gap, recovers, applies all.
    hold.store(false, std::sync::atomic::Ordering::Relaxed);
    let event = track(action, "TH", "o-5", "network.created", "2019-01-01");
    publish(&js, subject(&event), None, event.to_string().into_bytes()).await;
    eventually(30, async || {
        (log_position(&http, &service).await? == 6).then_some(())
    })
    .await;
    wait_ready(&http, &service).await;
    let (_, ready) = get_json(&http, &service.url("/readyz")).await;
    assert!(ready.get("consumer").is_none(), "{ready}");
    assert_eq!(ready["consumer_lag"], 0, "{ready}");
}
