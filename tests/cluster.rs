//! Replicas (CONTRACT.md §6.3) on a real three-server JetStream cluster, started from the
//! repository's shipped configuration (`deploy/nats/cluster/`): a stream R3, two service
//! instances consuming it into their own data directories, writes through both and straight
//! to NATS while the stream's leader is killed and restarted, then a third instance from an
//! empty directory.

mod common;

use async_nats::jetstream;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The index of the server named `name` (`n1`…`n3`).
fn index_of(name: &str) -> usize {
    name.trim_start_matches('n').parse::<usize>().unwrap() - 1
}

fn instance_config(dir: &Path, cluster: &Brokers) -> String {
    let password = dir.join("password");
    std::fs::write(&password, SERVICE_NATS_PASSWORD).unwrap();
    let path = dir.join("impact.toml");
    std::fs::write(
        &path,
        format!(
            "[nats]\n{}user = \"impact\"\npassword_file = \"{}\"\ninbox_prefix = \"_INBOX_impact\"\n\
             stall_ms = 1500\npublish_timeout_ms = 10000\n[review]\nschedule = \"off\"\n",
            cluster.nats_lines(),
            password.display()
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// A connection as the service's user, to ask the cluster where the stream's leader is.
async fn inspector(cluster: &Brokers) -> jetstream::Context {
    jetstream::new(
        cluster
            .connect_as("impact", SERVICE_NATS_PASSWORD, "_INBOX_impact")
            .await,
    )
}

async fn stream_leader(js: &jetstream::Context) -> Option<String> {
    let mut stream = js.get_stream("IMPACT").await.ok()?;
    let info = stream.info().await.ok()?;
    info.cluster.as_ref()?.leader.clone()
}

async fn ready(http: &reqwest::Client, service: &Service) -> (u16, Value) {
    match http.get(service.url("/readyz")).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_ready(http: &reqwest::Client, service: &Service) {
    eventually(120, async || {
        (ready(http, service).await.0 == 200).then_some(())
    })
    .await;
}

/// Every stored event of an instance: seq → (event_id, stored JSON).
async fn log_of(http: &reqwest::Client, service: &Service) -> BTreeMap<u64, (String, String)> {
    all_events(http, service)
        .await
        .into_iter()
        .map(|event| {
            (
                event["seq"].as_u64().unwrap(),
                (
                    event["event_id"].as_str().unwrap().to_owned(),
                    event.to_string(),
                ),
            )
        })
        .collect()
}

/// Two instances' logs are the same, byte for byte (the first difference is shown, not all).
fn assert_same_log(a: &BTreeMap<u64, (String, String)>, b: &BTreeMap<u64, (String, String)>) {
    assert_eq!(a.len(), b.len(), "as many events on each instance");
    if let Some((seq, event)) = a.iter().find(|(seq, event)| b.get(seq) != Some(event)) {
        panic!(
            "seq {seq} differs:\n{}\n{:?}",
            event.1,
            b.get(seq).map(|e| &e.1)
        );
    }
}

/// The views an instance serves: the list and every Action's view.
async fn views_of(http: &reqwest::Client, service: &Service) -> Vec<String> {
    let (_, list) = get_json(http, &service.url("/v1/actions")).await;
    let mut views = vec![list.to_string()];
    for item in list["actions"].as_array().unwrap() {
        let id = item["action_id"].as_str().unwrap();
        views.push(
            get_text(
                http,
                &service.url(&format!("/v1/actions/{id}?as_of=2026-01-01")),
            )
            .await,
        );
    }
    views
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_an_r3_stream_lose_and_double_nothing_when_its_leader_is_killed() {
    let mut cluster = Brokers::shipped_cluster(&shipped_passwords());
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = Service::start(&["--config", &instance_config(dirs[0].path(), &cluster)]);
    let b = Service::start(&["--config", &instance_config(dirs[1].path(), &cluster)]);
    let http = client();
    wait_ready(&http, &a).await;
    wait_ready(&http, &b).await;
    let js = inspector(&cluster).await;
    let mut stream = js.get_stream("IMPACT").await.unwrap();
    assert_eq!(stream.info().await.unwrap().config.num_replicas, 3);

    // Writers: HTTP through both instances, and the Thai field office straight to NATS.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let unavailable: Arc<Mutex<usize>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let action = "MIEUX-TH-2014-01";
    let (status, _) = post_json(
        &http,
        &a.url("/v1/events?wait=true"),
        &registered(action, "TH"),
    )
    .await;
    assert_eq!(status, 202);
    let mut writers = Vec::new();
    for (n, url) in [a.url("/v1/events"), b.url("/v1/events")]
        .into_iter()
        .enumerate()
    {
        let (http, acked, unavailable, stop) = (
            http.clone(),
            acked.clone(),
            unavailable.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let event = track(
                    action,
                    "TH",
                    &format!("http-{n}-{round}"),
                    "network.created",
                    "2019-01-01",
                );
                match post_json(&http, &url, &event).await {
                    (202, _) => acked
                        .lock()
                        .unwrap()
                        .push(event["event_id"].as_str().unwrap().to_owned()),
                    (503, _) => *unavailable.lock().unwrap() += 1,
                    (status, body) => panic!("{status} {body}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    {
        let thai = cluster
            .connect_as("fo-th", THAI_NATS_PASSWORD, "_INBOX_fo-th")
            .await;
        let (acked, stop) = (acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut js = jetstream::new(thai);
            js.set_timeout(Duration::from_secs(2));
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let event = track(
                    action,
                    "TH",
                    &format!("nats-{round}"),
                    "network.created",
                    "2019-01-01",
                );
                let id = event["event_id"].as_str().unwrap().to_owned();
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.as_str());
                // Retried with the same id until acknowledged, as a field office's client does.
                loop {
                    let sent = js
                        .publish_with_headers(
                            format!("impact.events.TH.{action}"),
                            headers.clone(),
                            event.to_string().into(),
                        )
                        .await;
                    if let Ok(ack) = sent {
                        if ack.await.is_ok() {
                            acked.lock().unwrap().push(id.clone());
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Under load: kill -9 the stream's leader, then each other server in turn, restarting each
    // before the next. An instance whose consumer hears nothing for longer than `stall_ms`
    // while the writers go on (its log position stands still) must say so on /readyz.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = stream_leader(&js).await.expect("the stream has a leader");
    let first = index_of(&leader);
    let mut stalled_seen = [false, false];
    let mut still_since = [std::time::Instant::now(); 2];
    let mut last_position = [0u64; 2];
    let mut longest_still = [Duration::ZERO; 2];
    for killed in [first, (first + 1) % 3, (first + 2) % 3] {
        cluster.servers[killed].kill();
        let deadline = std::time::Instant::now() + Duration::from_secs(9);
        while std::time::Instant::now() < deadline {
            // The stream's last sequence, when the cluster can say (not during an election).
            let stream_last = tokio::time::timeout(Duration::from_millis(500), async {
                js.get_stream("IMPACT")
                    .await
                    .ok()?
                    .info()
                    .await
                    .ok()
                    .map(|i| i.state.last_sequence)
            })
            .await
            .ok()
            .flatten();
            for (n, service) in [&a, &b].into_iter().enumerate() {
                let (status, body) = ready(&http, service).await;
                stalled_seen[n] |= status == 503 && body["consumer"] == "stalled";
                let Some(position) = body["log_position"].as_u64() else {
                    continue;
                };
                // Still only while the stream holds more than the instance has applied.
                let behind = stream_last.is_some_and(|last| last > position);
                if position != last_position[n] || !behind {
                    last_position[n] = position;
                    still_since[n] = std::time::Instant::now();
                }
                longest_still[n] = longest_still[n].max(still_since[n].elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster.servers[killed].restart();
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 200, "{} events acknowledged", acked.len());
    for n in 0..2 {
        // stall_ms is 1.5 s; the watcher looks each second and /readyz was asked every 100 ms.
        if longest_still[n] > Duration::from_millis(4_000) {
            assert!(
                stalled_seen[n],
                "instance {n}'s log stood still {:?} behind the stream, and /readyz never said its consumer stalled",
                longest_still[n]
            );
        }
    }
    wait_ready(&http, &a).await;
    wait_ready(&http, &b).await;

    // Both instances apply every acknowledged event once, at the same seq, byte for byte.
    let total = stream.info().await.unwrap().state.messages;
    let mut logs = Vec::new();
    for service in [&a, &b] {
        let log = eventually(60, async || {
            let log = log_of(&http, service).await;
            (log.len() as u64 >= total).then_some(log)
        })
        .await;
        logs.push(log);
    }
    assert_same_log(&logs[0], &logs[1]);
    let seqs: Vec<u64> = logs[0].keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seq is contiguous"
    );
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (event_id, _) in logs[0].values() {
        *counts.entry(event_id.as_str()).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            counts.get(id.as_str()),
            Some(&1),
            "acknowledged event {id} applied once"
        );
    }
    assert!(counts.values().all(|count| *count == 1), "no event twice");
    let views = views_of(&http, &a).await;
    assert_eq!(
        views,
        views_of(&http, &b).await,
        "the instances' views are byte-identical"
    );

    // A third instance from an empty directory catches up to the same views; and a stopped
    // instance's views equal a rebuild of its log.
    let c = Service::start(&["--config", &instance_config(dirs[2].path(), &cluster)]);
    wait_ready(&http, &c).await;
    eventually(60, async || {
        (log_of(&http, &c).await.len() == logs[0].len()).then_some(())
    })
    .await;
    assert_same_log(&log_of(&http, &c).await, &logs[0]);
    assert!(
        views_of(&http, &c).await == views,
        "a new instance serves the same views"
    );
    let data_dir = a.data_dir.clone();
    let mut a = a;
    a.terminate();
    assert_views_equal_a_rebuild(&data_dir);
}
