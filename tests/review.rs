//! Reviews end to end: the demo data reviewed as of a fixed date against flags worked out by
//! hand from the rules of CONTRACT.md §3, and the one-review-per-slot guarantee across restarts
//! and across two service instances on one NATS stream.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn findings(report: &Value) -> BTreeSet<(String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["action_id"].as_str().unwrap().to_owned(),
                f["outcome_id"].as_str().unwrap_or("").to_owned(),
                f["flag"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_review_of_the_demo_data_finds_what_the_rules_give_by_hand() {
    let service = Service::start(&["--demo"]);
    let http = client();
    let (status, report) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"as_of": "2026-10-01"}),
    )
    .await;
    assert_eq!(status, 201, "{report}");
    let expected: BTreeSet<(String, String, String)> = [
        // Thailand: the protocol's law change was due by 2019-05-31 and nothing came since 2018.
        ("MIEUX-TH-2014-01", "vot-protocol", "overdue"),
        ("MIEUX-TH-2014-01", "vot-protocol", "stale"),
        // The focal points: established 2015 (achieved), operational due 2016-06-30, never verified.
        ("MIEUX-TH-2014-01", "repatriation-focal-points", "overdue"),
        ("MIEUX-TH-2014-01", "repatriation-focal-points", "stale"),
        (
            "MIEUX-TH-2014-01",
            "repatriation-focal-points",
            "unverified",
        ),
        // The network: active and verified in 2016, silent since.
        ("MIEUX-TH-2014-01", "thai-eu-network", "stale"),
        // Lao PDR: the working group established 2017, operational due end 2018.
        (
            "MIEUX-LA-2016-02",
            "migration-data-working-group",
            "overdue",
        ),
        ("MIEUX-LA-2016-02", "migration-data-working-group", "stale"),
        (
            "MIEUX-LA-2016-02",
            "migration-data-working-group",
            "unverified",
        ),
        // Timor-Leste: awareness only; the defaulted next stage was due 180 days later.
        ("MIEUX-TL-2017-04", "police-border-awareness", "overdue"),
        ("MIEUX-TL-2017-04", "police-border-awareness", "stale"),
        // Cambodia: the practice lapsed.
        (
            "MIEUX-KH-2017-05",
            "police-anti-trafficking-practice",
            "regressed",
        ),
        // Kyrgyzstan: ratification was expected by 2020-09-30.
        ("MIEUX-KG-2018-06", "national-migration-policy", "overdue"),
        ("MIEUX-KG-2018-06", "national-migration-policy", "stale"),
    ]
    .into_iter()
    .map(|(a, o, f)| (a.to_owned(), o.to_owned(), f.to_owned()))
    .collect();
    assert_eq!(findings(&report), expected);
    let overdue = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["outcome_id"] == "vot-protocol" && f["flag"] == "overdue")
        .unwrap();
    assert_eq!(
        overdue["detail"],
        "adopted expected by 2019-05-31, 2680 days ago"
    );
    let highlights: BTreeSet<&str> = report["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        highlights,
        BTreeSet::from([
            "migration-data-working-group",
            "repatriation-focal-points",
            "social-marketing-campaigns",
            "thai-eu-network"
        ])
    );
    assert_eq!(
        report["totals"],
        json!({"actions": 6, "outcomes": 8, "in_progress": 3, "achieved": 3, "sustained": 1, "regressed": 1, "verified": 2, "disputed": 0, "reported": 6})
    );
    assert_eq!(report["by_country"]["TH"]["outcomes"], 3);
    assert_eq!(report["by_track"]["practice"]["outcomes"], 3);

    // The same as_of, until_seq and country give the same findings.
    let (_, again) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"as_of": "2026-10-01"}),
    )
    .await;
    assert_eq!(findings(&again), findings(&report));
    let (_, thai) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"as_of": "2026-10-01", "country": "TH"}),
    )
    .await;
    assert_eq!(thai["totals"]["actions"], 1);
    assert_eq!(findings(&thai).len(), 6);
}

fn scheduled_config(dir: &std::path::Path, nats: Option<&NatsServer>) -> String {
    let path = dir.join("impact.toml");
    let nats = nats.map_or(String::new(), |nats| {
        format!("[nats]\nurl = \"{}\"\n", nats.url())
    });
    std::fs::write(
        &path,
        format!("{nats}[review]\nschedule = \"0 3 1 */3 *\"\n"),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

async fn review_ids(http: &reqwest::Client, service: &Service) -> Vec<String> {
    let (_, list) = get_json(http, &service.url("/v1/reviews")).await;
    list["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["review_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_missed_slot_is_reviewed_once_at_start_and_a_restart_writes_no_second() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(&["--demo", "--config", &scheduled_config(dir.path(), None)]);
    let http = client();
    let ids = eventually(20, async || {
        let ids = review_ids(&http, &service).await;
        (!ids.is_empty()).then_some(ids)
    })
    .await;
    assert_eq!(ids.len(), 1);
    assert!(
        ids[0].starts_with("scheduled-") && ids[0].ends_with("T0300Z"),
        "{ids:?}"
    );
    let (_, report) = get_json(&http, &service.url(&format!("/v1/reviews/{}", ids[0]))).await;
    assert_eq!(report["schedule_slot"].as_str().unwrap().len(), 20);
    for _ in 0..3 {
        service.kill9();
        service.restart();
        // The catch-up runs at start; give it the time a review takes, then count.
        let (status, _) = post_json(
            &http,
            &service.url("/v1/events?wait=true"),
            &registered("MIEUX-TH-9999", "TH"),
        )
        .await;
        assert_eq!(status, 202);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(review_ids(&http, &service).await, ids);
    }
}

#[tokio::test]
async fn two_instances_on_one_nats_stream_write_one_review_per_slot() {
    let nats = NatsServer::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Service::start(&["--config", &scheduled_config(dir_a.path(), Some(&nats))]);
    let b = Service::start(&["--config", &scheduled_config(dir_b.path(), Some(&nats))]);
    let http = client();
    for service in [&a, &b] {
        let ids = eventually(30, async || {
            let ids = review_ids(&http, service).await;
            (!ids.is_empty()).then_some(ids)
        })
        .await;
        assert_eq!(ids.len(), 1, "{ids:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let events_a = all_events(&http, &a).await;
    let events_b = all_events(&http, &b).await;
    assert_eq!(events_a.len(), 1, "one review in the log: {events_a:?}");
    assert_eq!(
        events_a,
        events_b
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["recorded_at"] = events_a[0]["recorded_at"].clone();
                e
            })
            .collect::<Vec<_>>(),
        "both replicas applied the same single review"
    );
}

/// 10,000 Actions of 5 outcomes each, long unreported: a review with ~100,000 findings, some
/// 20 MB of report, far beyond one message.
async fn load_large(http: &reqwest::Client, service: &Service) {
    let countries = ["TH", "LA", "PH", "KG"];
    let mut body = Vec::with_capacity(1000);
    for a in 0..10_000 {
        let country = countries[a % 4];
        let action = format!("MIEUX-{country}-{a:05}");
        body.push(registered(&action, country));
        for o in 0..5 {
            let mut event = track(
                &action,
                country,
                &format!("outcome-{o}"),
                "network.created",
                "2016-05-01",
            );
            event["data"] = json!({"title": format!("Network {o} of Action {a}")});
            body.push(event);
        }
        if body.len() >= 990 || a == 9_999 {
            let (status, answer) =
                post_json(http, &service.url("/v1/events?wait=true"), &json!(body)).await;
            assert_eq!(status, 202, "{answer}");
            body.clear();
        }
    }
}

async fn a_large_review_is_written_and_read_back_whole(service: &Service) {
    let http = client();
    load_large(&http, service).await;
    let (status, report) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"as_of": "2026-10-01"}),
    )
    .await;
    assert_eq!(
        status,
        201,
        "{}",
        report.to_string().chars().take(400).collect::<String>()
    );
    assert_eq!(report["totals"]["actions"], 10_000);
    assert_eq!(report["totals"]["outcomes"], 50_000);
    let found = report["findings"].as_array().unwrap().len();
    assert!(found >= 50_000, "{found} findings");
    assert!(
        report.get("parts").is_none(),
        "parts are the store's business"
    );
    let id = report["review_id"].as_str().unwrap();
    let (status, read) = get_json(&http, &service.url(&format!("/v1/reviews/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(read, report, "read back whole, as written");
    // Stored as its parts and a head that fit one message each.
    let events = all_events(&http, service).await;
    let parts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "review.part")
        .collect();
    assert!(parts.len() > 10, "{} parts", parts.len());
    for event in events.iter().filter(|e| e["action_id"] == "REVIEW") {
        let size = event.to_string().len();
        assert!(size < 1024 * 1024, "a review event of {size} bytes");
    }
    let head = events
        .iter()
        .find(|e| e["type"] == "review.completed")
        .unwrap();
    assert!(head["seq"].as_u64() > parts.iter().map(|p| p["seq"].as_u64()).max().unwrap());
    let (_, metrics) = (0, get_text(&http, &service.url("/metrics")).await);
    assert!(
        metrics.contains("impact_review_slot_failing 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_of_10000_actions_is_stored_whole_on_the_embedded_bus() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("impact.toml");
    std::fs::write(&config, "[review]\nschedule = \"off\"\n").unwrap();
    let service = Service::start(&["--config", config.to_str().unwrap()]);
    a_large_review_is_written_and_read_back_whole(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_of_10000_actions_is_stored_whole_on_nats_with_its_default_max_payload() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("impact.toml");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{}\"\n[review]\nschedule = \"off\"\n",
            nats.url()
        ),
    )
    .unwrap();
    let service = Service::start(&["--config", config.to_str().unwrap()]);
    let http = client();
    eventually(30, async || {
        (http.get(service.url("/readyz")).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
    a_large_review_is_written_and_read_back_whole(&service).await;
}

#[tokio::test]
async fn a_scheduled_review_that_cannot_be_written_says_why_until_it_is() {
    let mut nats = NatsServer::start();
    nats.kill();
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &scheduled_config(dir.path(), Some(&nats))]);
    let http = client();
    // The start's catch-up of the last slot cannot reach the broker.
    let ready = eventually(30, async || {
        let (_, ready) = get_json(&http, &service.url("/readyz")).await;
        (ready["scheduled_review"] == "failing").then_some(ready)
    })
    .await;
    let because = ready["scheduled_review_failing_because"].as_str().unwrap();
    assert!(
        because.starts_with("slot ") && because.contains("T03:00:00Z"),
        "{because}"
    );
    let metrics = get_text(&http, &service.url("/metrics")).await;
    assert!(
        metrics.contains("impact_review_slot_failing 1"),
        "{metrics}"
    );

    nats.restart();
    let ids = eventually(60, async || {
        let ids = review_ids(&http, &service).await;
        (!ids.is_empty()).then_some(ids)
    })
    .await;
    assert_eq!(ids.len(), 1);
    let (_, ready) = get_json(&http, &service.url("/readyz")).await;
    assert!(ready.get("scheduled_review").is_none(), "{ready}");
    let metrics = get_text(&http, &service.url("/metrics")).await;
    assert!(
        metrics.contains("impact_review_slot_failing 0"),
        "{metrics}"
    );
}
