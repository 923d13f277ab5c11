//! The HTTP API on the embedded bus, through the real binary: every endpoint, every error
//! status, each rejection code reachable over HTTP, the roles, and crashes.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

const TH: &str = "MIEUX-TH-2014-01";

fn code_of(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn submitted_events_show_in_views_histories_and_the_log() {
    let service = Service::start(&[]);
    let http = client();
    let body = json!([
        registered(TH, "TH"),
        event(
            "legislation.pending",
            TH,
            "TH",
            Some("vot-protocol"),
            "2018-11-20",
            json!({"title": "Victim protection protocol", "expected": {"stage": "adopted", "by": "2019-05-31"}})
        ),
    ]);
    let (status, answer) = post_json(&http, &service.url("/v1/events?wait=true"), &body).await;
    assert_eq!(status, 202, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results
        .iter()
        .all(|r| r["status"] == "accepted" && r["stream_seq"].is_null()));
    let last_seq = results[1]["seq"].as_u64().unwrap();

    // Read-your-writes: the answer's seq is in the view read right after.
    let (status, view) = get_json(&http, &service.url(&format!("/v1/actions/{TH}"))).await;
    assert_eq!(status, 200);
    assert_eq!(view["last_seq"].as_u64(), Some(last_seq));
    assert_eq!(view["outcomes"][0]["stage"], "pending");
    assert_eq!(view["outcomes"][0]["expected"]["date_source"], "explicit");
    assert!(view["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["flag"] == "overdue"));
    assert_eq!(view["reference_date"].as_str().unwrap().len(), 10);

    // Time travel on the view and its history.
    let (_, early) = get_json(
        &http,
        &service.url(&format!("/v1/actions/{TH}?as_of=2015-01-01")),
    )
    .await;
    assert_eq!(early["outcomes"], json!([]));
    assert_eq!(early["reference_date"], "2015-01-01");
    let (status, _) = get_json(
        &http,
        &service.url(&format!("/v1/actions/{TH}?until_seq=0")),
    )
    .await;
    assert_eq!(status, 404);
    let (_, history) = get_json(&http, &service.url(&format!("/v1/actions/{TH}/events"))).await;
    assert_eq!(history["events"].as_array().unwrap().len(), 2);
    assert_eq!(history["events"][0]["retracted"], false);
    assert_eq!(history["events"][0]["seq"], 1);
    assert!(history["events"][0]["recorded_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(history["events"][0]["submitted_by"], Value::Null);

    // A retraction shows in the history and takes the stage back.
    let target = body[1]["event_id"].as_str().unwrap();
    let retraction = event(
        "event.retracted",
        TH,
        "TH",
        None,
        "2019-01-01",
        json!({"target_event_id": target, "reason": "wrong outcome"}),
    );
    let (_, view) = get_json(&http, &service.url(&format!("/v1/actions/{TH}"))).await;
    assert_eq!(view["last_seq"].as_u64(), Some(last_seq));
    let (status, retracted) =
        post_json(&http, &service.url("/v1/events?wait=true"), &retraction).await;
    assert_eq!(status, 202);
    // The view read before is not served again once the record changed.
    let (_, view) = get_json(&http, &service.url(&format!("/v1/actions/{TH}"))).await;
    assert_eq!(view["last_seq"], retracted["results"][0]["seq"]);
    assert_eq!(view["outcomes"], json!([]), "{view}");
    let (_, history) = get_json(&http, &service.url(&format!("/v1/actions/{TH}/events"))).await;
    assert_eq!(history["events"][1]["retracted"], true);
    let (_, before) = get_json(
        &http,
        &service.url(&format!("/v1/actions/{TH}/events?until_seq=2")),
    )
    .await;
    assert_eq!(before["events"][1]["retracted"], false);

    // The list and its filters.
    let (_, list) = get_json(&http, &service.url("/v1/actions")).await;
    assert_eq!(list["actions"][0]["action_id"], TH);
    assert_eq!(list["actions"][0]["registered"], true);
    let (_, none) = get_json(&http, &service.url("/v1/actions?country=LA")).await;
    assert_eq!(none["actions"], json!([]));
    let (status, bad) = get_json(&http, &service.url("/v1/actions?state=glorious")).await;
    assert_eq!((status, code_of(&bad)), (400, "bad_query"));
    let (status, bad) = get_json(
        &http,
        &service.url(&format!("/v1/actions/{TH}?as_of=2019-13-01")),
    )
    .await;
    assert_eq!((status, code_of(&bad)), (400, "bad_query"));

    // The global log, as pages and as NDJSON.
    let (_, page) = get_json(&http, &service.url("/v1/events?after=1&limit=1")).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_after"], 2);
    assert_eq!(all_events(&http, &service).await.len(), 3);
    let (status, _) = get_json(&http, &service.url("/v1/events?limit=10001")).await;
    assert_eq!(status, 400);

    let (status, rejections) = get_json(&http, &service.url("/v1/rejections")).await;
    assert_eq!(status, 200);
    assert_eq!(rejections["rejections"], json!([]));
}

#[tokio::test]
async fn health_readiness_metrics_schemas_and_the_dashboard_answer() {
    let service = Service::start(&["--demo"]);
    let http = client();
    assert_eq!(get_json(&http, &service.url("/healthz")).await.0, 200);
    // The demo is loaded before the service answers; with nothing in flight, what readers
    // see (written) is what is durable (synced).
    let (status, ready) = get_json(&http, &service.url("/readyz")).await;
    assert_eq!(status, 200);
    let durable = ready["log_position"].as_u64().unwrap();
    assert!(durable > 0, "{ready}");
    assert_eq!(ready["visible_position"].as_u64(), Some(durable), "{ready}");
    let metrics = get_text(&http, &service.url("/metrics")).await;
    for name in [
        "impact_events_applied_total",
        "impact_events_duplicate_total",
        "impact_events_rejected_total{code=\"schema_violation\"}",
        "impact_log_position",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
    let (_, schemas) = get_json(&http, &service.url("/v1/schemas")).await;
    assert_eq!(schemas["schemas"], json!(["event.v1"]));
    let (status, schema) = get_json(&http, &service.url("/v1/schemas/event.v1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        get_json(&http, &service.url("/v1/schemas/nope")).await.0,
        404
    );
    let page = get_text(&http, &service.url("/")).await;
    assert!(
        page.contains("MIEUX-TH-2014-01") && page.contains("<table>"),
        "{page}"
    );
    let detail = get_text(&http, &service.url("/actions/MIEUX-KG-2018-06")).await;
    assert!(detail.contains("national-migration-policy"));
    let (status, body) = get_json(&http, &service.url("/v1/nothing-here")).await;
    assert_eq!((status, code_of(&body)), (404, "not_found"));
    let (status, body) = get_json(&http, &service.url("/v1/actions/MIEUX-XX-0000-00")).await;
    assert_eq!((status, code_of(&body)), (404, "not_found"));
}

#[tokio::test]
async fn every_rejection_code_reachable_over_http_has_its_status() {
    let service = Service::start(&[]);
    let http = client();
    let url = service.url("/v1/events");
    let first = track(
        TH,
        "TH",
        "vot-protocol",
        "legislation.pending",
        "2018-11-20",
    );
    assert_eq!(post_json(&http, &url, &first).await.0, 202);

    let raw = |body: &'static [u8]| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = raw(b"{not json").await;
    assert_eq!((status, code_of(&body)), (400, "malformed_json"));
    let (status, body) = raw(b"\"a string\"").await;
    assert_eq!((status, code_of(&body)), (400, "malformed_json"));

    let mut huge = track(
        TH,
        "TH",
        "vot-protocol",
        "legislation.adopted",
        "2019-01-01",
    );
    huge["data"]["note"] = json!("x".repeat(70_000));
    let (status, body) = post_json(&http, &url, &huge).await;
    assert_eq!((status, code_of(&body)), (413, "payload_too_large"));
    let too_many: Vec<Value> = (0..1001).map(|_| registered(TH, "TH")).collect();
    let (status, body) = post_json(&http, &url, &json!(too_many)).await;
    assert_eq!((status, code_of(&body)), (413, "payload_too_large"));

    let mut missing = track(
        TH,
        "TH",
        "vot-protocol",
        "legislation.adopted",
        "2019-01-01",
    );
    missing.as_object_mut().unwrap().remove("reported_by");
    let (status, body) = post_json(&http, &url, &missing).await;
    assert_eq!((status, code_of(&body)), (422, "schema_violation"));
    assert_eq!(body["error"]["details"][0]["path"], "/reported_by");
    assert_eq!(body["error"]["details"][0]["index"], 0);

    let cases: Vec<(Value, u16, &str)> = vec![
        (
            track(
                TH,
                "TH",
                "vot-protocol",
                "legislation.celebrated",
                "2019-01-01",
            ),
            422,
            "unknown_type",
        ),
        (
            {
                let mut review = event(
                    "review.completed",
                    "REVIEW",
                    "XX",
                    None,
                    "2019-01-01",
                    json!({}),
                );
                review["data"] = json!({"review_id": "mine"});
                review
            },
            422,
            "forbidden_type",
        ),
        (
            {
                let mut conflict = first.clone();
                conflict["occurred_on"] = json!("2018-11-21");
                conflict
            },
            409,
            "event_id_conflict",
        ),
        (
            track(TH, "TH", "vot-protocol", "policy.ratified", "2019-01-01"),
            422,
            "track_mismatch",
        ),
        (
            event(
                "outcome.verified",
                TH,
                "TH",
                Some("other-outcome"),
                "2019-01-01",
                json!({"by": "me"}),
            ),
            422,
            "outcome_unknown",
        ),
        (
            event(
                "legislation.adopted",
                TH,
                "TH",
                Some("vot-protocol"),
                "2019-01-01",
                json!({"expected": {"stage": "repealed", "by": "2020-01-01"}}),
            ),
            422,
            "expected_stage_invalid",
        ),
        (
            track(
                TH,
                "LA",
                "vot-protocol",
                "legislation.adopted",
                "2019-01-01",
            ),
            422,
            "country_mismatch",
        ),
        (
            event(
                "event.retracted",
                TH,
                "TH",
                None,
                "2019-01-01",
                json!({"target_event_id": new_id(), "reason": "?"}),
            ),
            422,
            "retraction_target_unknown",
        ),
        (
            track(
                TH,
                "TH",
                "vot-protocol",
                "legislation.adopted",
                "2099-01-01",
            ),
            422,
            "occurred_in_future",
        ),
    ];
    for (event, status, code) in cases {
        let (got_status, body) = post_json(&http, &url, &event).await;
        assert_eq!((got_status, code_of(&body)), (status, code), "{body}");
    }

    // The same content again is a duplicate, applied once.
    let (status, body) = post_json(&http, &service.url("/v1/events?wait=true"), &first).await;
    assert_eq!(status, 202);
    assert_eq!(body["results"][0]["status"], "duplicate");
    assert_eq!(body["results"][0]["seq"], 1);

    // A body with one bad event stores nothing, and names the failing index.
    let good = track(
        TH,
        "TH",
        "vot-protocol",
        "legislation.adopted",
        "2019-06-01",
    );
    let bad = track(TH, "TH", "vot-protocol", "policy.ratified", "2019-06-01");
    let (status, body) = post_json(&http, &url, &json!([good, bad])).await;
    assert_eq!((status, code_of(&body)), (422, "track_mismatch"));
    assert_eq!(body["error"]["details"][0]["index"], 1);
    let (_, view) = get_json(&http, &service.url(&format!("/v1/actions/{TH}"))).await;
    assert_eq!(
        view["event_count"], 1,
        "nothing of the refused body was stored"
    );

    let metrics = get_text(&http, &service.url("/metrics")).await;
    assert!(
        metrics.contains("impact_events_rejected_total{code=\"track_mismatch\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("impact_events_duplicate_total 1"),
        "{metrics}"
    );
}

fn auth_config(dir: &std::path::Path) -> std::path::PathBuf {
    principals_config(dir, "").into()
}

#[tokio::test]
async fn each_role_can_do_what_it_may_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path());
    let service = Service::start(&["--config", config.to_str().unwrap()]);
    let http = client();
    let post = |token: Option<&'static str>, path: &'static str, body: Value| {
        let http = http.clone();
        let url = service.url(path);
        async move {
            let mut request = http.post(url).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let get = |token: Option<&'static str>, path: String| {
        let http = http.clone();
        let url = service.url(&path);
        async move {
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            response.status().as_u16()
        }
    };
    const LA: &str = "MIEUX-LA-2016-02";

    // No token and a wrong token: 401.
    let (status, body) = post(None, "/v1/events", registered(TH, "TH")).await;
    assert_eq!((status, code_of(&body)), (401, "unauthenticated"));
    let (status, _) = post(Some("wrong"), "/v1/events", registered(TH, "TH")).await;
    assert_eq!(status, 401);
    assert_eq!(get(None, "/v1/actions".into()).await, 401);
    assert_eq!(
        get(None, "/healthz".into()).await,
        200,
        "health needs no token"
    );

    // The field office writes its own country, and is refused another.
    let (status, body) = post(
        Some("fo-token"),
        "/v1/events?wait=true",
        json!([
            registered(TH, "TH"),
            track(
                TH,
                "TH",
                "vot-protocol",
                "legislation.pending",
                "2018-11-20"
            )
        ]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = post(Some("fo-token"), "/v1/events", registered(LA, "LA")).await;
    assert_eq!((status, code_of(&body)), (403, "forbidden"));
    let (status, _) = post(
        Some("fo-token"),
        "/v1/events",
        event(
            "outcome.verified",
            TH,
            "TH",
            Some("vot-protocol"),
            "2019-01-01",
            json!({"by": "me"}),
        ),
    )
    .await;
    assert_eq!(
        status, 403,
        "a field office does not verify its own results"
    );

    // The admin writes anywhere; the field office cannot read it.
    let (status, _) = post(
        Some("admin-token"),
        "/v1/events?wait=true",
        registered(LA, "LA"),
    )
    .await;
    assert_eq!(status, 202);
    // Read by the admin first, so the field office's read finds the view rendered already.
    assert_eq!(
        get(Some("admin-token"), format!("/v1/actions/{LA}")).await,
        200
    );
    assert_eq!(
        get(Some("fo-token"), format!("/v1/actions/{LA}")).await,
        403
    );
    assert_eq!(
        get(Some("fo-token"), format!("/v1/actions/{LA}/events")).await,
        403
    );
    assert_eq!(
        get(Some("fo-token"), format!("/v1/actions/{TH}")).await,
        200
    );
    let list: Value = http
        .get(service.url("/v1/actions"))
        .bearer_auth("fo-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![TH]);
    assert_eq!(get(Some("fo-token"), "/v1/events".into()).await, 403);
    assert_eq!(get(Some("fo-token"), "/v1/rejections".into()).await, 403);
    assert_eq!(get(Some("fo-token"), "/v1/reviews".into()).await, 403);
    let (status, _) = post(Some("fo-token"), "/v1/reviews", json!({})).await;
    assert_eq!(status, 403);

    // The evaluator verifies and reads everything, and submits no track event.
    let (status, _) = post(
        Some("eval-token"),
        "/v1/events",
        track(
            TH,
            "TH",
            "vot-protocol",
            "legislation.adopted",
            "2019-06-01",
        ),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        Some("eval-token"),
        "/v1/events",
        event(
            "outcome.verified",
            TH,
            "TH",
            Some("vot-protocol"),
            "2019-01-01",
            json!({"by": "eval"}),
        ),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        get(Some("eval-token"), format!("/v1/actions/{LA}")).await,
        200
    );
    assert_eq!(get(Some("eval-token"), "/v1/events".into()).await, 200);
    assert_eq!(get(Some("eval-token"), "/v1/rejections".into()).await, 200);
    let (status, report) = post(Some("eval-token"), "/v1/reviews", json!({"country": "TH"})).await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["country"], "TH");

    // submitted_by records the principal.
    let log: Value = http
        .get(service.url("/v1/events"))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["events"][0]["submitted_by"], "fo-bangkok");
    assert_eq!(log["events"][2]["submitted_by"], "root");
}

#[tokio::test]
async fn without_principals_the_server_refuses_a_non_loopback_address() {
    let output = std::process::Command::new(binary())
        .args(["serve", "--http", "0.0.0.0:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("authentication is off"), "{stderr}");
}

#[tokio::test]
async fn every_event_answered_202_survives_a_sigkill_once() {
    let mut service = Service::start(&[]);
    let http = client();
    let mut accepted = Vec::new();
    for n in 0..40 {
        let action = format!("MIEUX-TH-{n:04}");
        let body = json!([
            registered(&action, "TH"),
            track(
                &action,
                "TH",
                "vot-protocol",
                "legislation.pending",
                "2018-11-20"
            )
        ]);
        let (status, answer) = post_json(&http, &service.url("/v1/events"), &body).await;
        assert_eq!(status, 202);
        accepted.extend(
            answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["event_id"].as_str().unwrap().to_owned()),
        );
    }
    service.kill9();
    service.restart();
    let events = all_events(&http, &service).await;
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, accepted, "every acknowledged event, once, in order");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<_>>());
}

#[tokio::test]
async fn sigterm_during_a_stream_of_submissions_loses_no_accepted_event_and_exits_0() {
    let mut service = Service::start(&[]);
    let http = client();
    let url = service.url("/v1/events");
    let sender = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for n in 0..100_000 {
            let action = format!("MIEUX-TH-{n:05}");
            let body = json!([registered(&action, "TH")]);
            match http.post(&url).json(&body).send().await {
                Ok(response) if response.status() == 202 => {
                    accepted.push(body[0]["event_id"].as_str().unwrap().to_owned())
                }
                _ => break,
            }
        }
        accepted
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = service.terminate();
        (status, service)
    })
    .await
    .unwrap();
    let (exit, mut service) = status;
    assert!(exit.success(), "exit status {exit:?}");
    let accepted = sender.await.unwrap();
    assert!(
        accepted.len() > 10,
        "the stream was running ({} accepted)",
        accepted.len()
    );
    service.restart();
    let events = all_events(&client(), &service).await;
    let stored: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(stored.len(), events.len(), "no event twice");
    for id in &accepted {
        assert!(stored.contains(id.as_str()), "accepted event {id} lost");
    }
}

#[tokio::test]
async fn the_outbox_keeps_events_while_the_server_is_down_and_delivers_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let file = dir.path().join("events.ndjson");
    let events = [
        registered(TH, "TH"),
        track(
            TH,
            "TH",
            "vot-protocol",
            "legislation.pending",
            "2018-11-20",
        ),
    ];
    std::fs::write(
        &file,
        events
            .iter()
            .map(|e| e.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let submit = |server: &str, files: &[&std::path::Path]| {
        std::process::Command::new(binary())
            .args(["submit", "--server", server, "--outbox"])
            .arg(&outbox)
            .args(files)
            .output()
            .unwrap()
    };
    let down = format!("http://127.0.0.1:{}", free_port());
    let output = submit(&down, &[&file]);
    assert!(!output.status.success());
    assert_eq!(
        outbox_events(&outbox).len(),
        2,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let service = Service::start(&[]);
    let output = submit(&service.base, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(outbox_events(&outbox).len(), 0);
    let http = client();
    assert_eq!(all_events(&http, &service).await.len(), 2);

    let output = submit(&service.base, &[&file]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches("duplicate").count(), 2, "{stdout}");
    assert_eq!(
        all_events(&http, &service).await.len(),
        2,
        "sending again appends nothing"
    );

    // A client error is shown with the server's code and never queued.
    let conflicting = dir.path().join("conflict.json");
    let mut changed = events[1].clone();
    changed["occurred_on"] = json!("2018-11-21");
    std::fs::write(&conflicting, changed.to_string()).unwrap();
    let output = submit(&service.base, &[&conflicting]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("event_id_conflict"));
    assert_eq!(outbox_events(&outbox).len(), 0);

    // Invalid locally: never sent.
    let invalid = dir.path().join("invalid.json");
    std::fs::write(
        &invalid,
        json!({"event_id": new_id(), "type": "legislation.pending"}).to_string(),
    )
    .unwrap();
    let output = submit(&service.base, &[&invalid]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("schema_violation"));
}

#[tokio::test]
async fn reviews_are_created_listed_and_read_as_json_and_markdown() {
    let service = Service::start(&["--demo"]);
    let http = client();
    let (status, report) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"as_of": "2026-10-01"}),
    )
    .await;
    assert_eq!(status, 201, "{report}");
    let id = report["review_id"].as_str().unwrap().to_owned();
    let (_, list) = get_json(&http, &service.url("/v1/reviews")).await;
    assert_eq!(list["reviews"][0]["review_id"], id.as_str(), "newest first");
    // Time travel: before the review's own seq (the demo's 24 events come first), it is not known.
    let (_, before) = get_json(&http, &service.url("/v1/reviews?until_seq=24")).await;
    assert_eq!(before["reviews"], json!([]));
    let (_, at) = get_json(&http, &service.url("/v1/reviews?until_seq=25")).await;
    assert_eq!(at["reviews"].as_array().unwrap().len(), 1);
    let (_, earlier) = get_json(
        &http,
        &service.url("/v1/reviews?known_at=2000-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(earlier["reviews"], json!([]));
    let (_, older_as_of) = get_json(&http, &service.url("/v1/reviews?as_of=2026-09-30")).await;
    assert_eq!(
        older_as_of["reviews"],
        json!([]),
        "a review read as of 2026-10-01 is not valid before it"
    );
    let (status, one) = get_json(&http, &service.url(&format!("/v1/reviews/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(one, report);
    let markdown = http
        .get(service.url(&format!("/v1/reviews/{id}")))
        .header("Accept", "text/markdown")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        markdown.starts_with("# Impact review") && markdown.contains("## Findings"),
        "{markdown}"
    );
    let markdown = get_text(
        &http,
        &service.url(&format!("/v1/reviews/{id}?format=markdown")),
    )
    .await;
    assert!(markdown.contains("| TH |"));
    assert_eq!(
        get_json(&http, &service.url("/v1/reviews/none")).await.0,
        404
    );
    // Reviews are in the log but never in the Action list.
    let (_, actions) = get_json(&http, &service.url("/v1/actions")).await;
    assert!(actions["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["action_id"] != "REVIEW"));
    assert!(all_events(&http, &service)
        .await
        .iter()
        .any(|e| e["type"] == "review.completed" && e["country"] == "XX"));
    let (status, _) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"as_of": "yesterday"}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_query_parameter_an_endpoint_does_not_take_is_refused_not_ignored() {
    let service = Service::start(&["--demo"]);
    let http = client();
    let (status, report) = post_json(&http, &service.url("/v1/reviews"), &json!({})).await;
    assert_eq!(status, 201, "{report}");
    let review = report["review_id"].as_str().unwrap().to_owned();
    let demo_action = "MIEUX-TH-2014-01";
    // A mistyped time-travel filter would otherwise answer for today instead of the date meant.
    for path in [
        "/v1/actions?asof=2016-01-01".to_owned(),
        format!("/v1/actions/{demo_action}?as-of=2016-01-01"),
        format!("/v1/actions/{demo_action}/events?untilseq=3"),
        "/v1/events?since=3".to_owned(),
        "/v1/rejections?after=0&max=5".to_owned(),
        "/v1/reviews?knownat=2020-01-01T00:00:00Z".to_owned(),
        format!("/v1/reviews/{review}?fmt=markdown"),
    ] {
        let response = http.get(service.url(&path)).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (status, code_of(&body)),
            (400, "bad_query"),
            "{path}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("unknown query parameter"),
            "{path}: {message}"
        );
    }
    // A page says so in the page, beside its filter form.
    let response = http
        .get(service.url("/?asof=2016-01-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("unknown query parameter") && html.contains("asof"),
        "{html}"
    );
    let (_, body) = get_json(
        &http,
        &service.url(&format!("/v1/actions/{demo_action}?as-of=2016-01-01")),
    )
    .await;
    assert_eq!(
        body["error"]["message"],
        "unknown query parameter \"as-of\": this endpoint takes as_of, until_seq, known_at"
    );
    let (status, body) = post_json(&http, &service.url("/v1/events?wiat=true"), &json!([])).await;
    assert_eq!((status, code_of(&body)), (400, "bad_query"), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("\"wiat\""));
    let (status, body) = post_json(
        &http,
        &service.url("/v1/reviews?as_of=2020-01-01"),
        &json!({}),
    )
    .await;
    assert_eq!((status, code_of(&body)), (400, "bad_query"), "{body}");

    // The parameters each endpoint does take still work, together.
    for path in [
        "/v1/actions?as_of=2016-01-01&until_seq=30&known_at=2100-01-01T00:00:00Z&country=TH&track=network&state=achieved&flag=stale".to_owned(),
        format!("/v1/actions/{demo_action}?as_of=2020-01-01&until_seq=30&known_at=2100-01-01T00:00:00Z"),
        format!("/v1/actions/{demo_action}/events?as_of=2020-01-01&until_seq=30"),
        "/v1/events?after=3&limit=2".to_owned(),
        "/v1/rejections?after=0&limit=5".to_owned(),
        "/v1/reviews?as_of=2030-01-01&format=json".to_owned(),
        "/?as_of=2020-01-01".to_owned(),
    ] {
        let response = http.get(service.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}: {}", response.text().await.unwrap());
    }
    // The NDJSON stream has no page size, but a limit sent with it is checked all the same.
    let response = http
        .get(service.url("/v1/events?limit=zero"))
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // A format is json or markdown; named, it wins over Accept.
    let (status, body) = get_json(
        &http,
        &service.url(&format!("/v1/reviews/{review}?format=xml")),
    )
    .await;
    assert_eq!((status, code_of(&body)), (400, "bad_query"), "{body}");
    let response = http
        .get(service.url(&format!("/v1/reviews/{review}?format=json")))
        .header("Accept", "text/markdown")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["review_id"],
        review.as_str()
    );
}

/// CONTRACT.md §11: `REVIEW` is the reviews' own pseudo-Action; no client event may name it.
#[tokio::test]
async fn a_client_event_for_the_reserved_action_review_is_a_schema_violation() {
    let service = Service::start(&[]);
    let http = client();
    let (status, answer) = post_json(
        &http,
        &service.url("/v1/events"),
        &registered("REVIEW", "TH"),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "schema_violation");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("reserved"));
    let (_, list) = get_json(&http, &service.url("/v1/actions")).await;
    assert_eq!(list["actions"], json!([]));
}

/// CONTRACT.md §11: with auth off (the quick start), a page on another site cannot post
/// events: a form's or `fetch`'s `text/plain` is `415`, a foreign `Origin` or `Sec-Fetch-Site:
/// cross-site` is `403`, and nothing is stored; the service's own origin may. Every response
/// carries the headers that keep pages from being framed, sniffed or fed from elsewhere.
#[tokio::test]
async fn with_auth_off_another_site_cannot_post_events() {
    let service = Service::start(&[]);
    let http = client();
    let url = service.url("/v1/events");
    let body = registered("MIEUX-TH-2022-01", "TH").to_string();
    let send = |content_type: &'static str, extra: Option<(&'static str, String)>| {
        let mut request = http
            .post(&url)
            .header("Content-Type", content_type)
            .body(body.clone());
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let answer: Value = response.json().await.unwrap();
            (status, answer, headers)
        }
    };
    let (status, answer, headers) = send("text/plain", None).await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["error"]["code"], "unsupported_media_type");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let foreign = Some(("Origin", "http://evil.example".to_owned()));
    let (status, answer, _) = send("application/json", foreign).await;
    assert_eq!(status, 403, "{answer}");
    let cross_site = Some(("Sec-Fetch-Site", "cross-site".to_owned()));
    let (status, answer, _) = send("application/json", cross_site).await;
    assert_eq!(status, 403, "{answer}");
    let (_, list) = get_json(&http, &service.url("/v1/actions")).await;
    assert_eq!(list["actions"], json!([]), "nothing was stored");

    let own = Some(("Origin", service.base.clone()));
    let (status, answer, _) = send("application/json; charset=utf-8", own).await;
    assert_eq!(status, 202, "{answer}");
    let (status, _, headers) = send("application/json", None).await;
    assert_eq!(
        status, 202,
        "a client without Origin (curl, impact submit) may post"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
}

/// CONTRACT.md §11: a retraction follows its target's rights. A field office cannot withdraw
/// an evaluator's `outcome.disputed` (the dispute stays), an evaluator can withdraw its own,
/// and a field office still withdraws its own track events.
#[tokio::test]
async fn a_field_office_cannot_retract_an_evaluators_dispute() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path());
    let service = Service::start(&["--config", config.to_str().unwrap()]);
    let http = client();
    let post = |token: &'static str, body: Value| post_as(&http, &service, token, body);
    let retraction = |target: &Value| {
        event(
            "event.retracted",
            TH,
            "TH",
            None,
            "2020-02-01",
            json!({"target_event_id": target["event_id"], "reason": "withdrawn"}),
        )
    };
    let step = track(TH, "TH", "o-1", "legislation.drafting", "2019-01-10");
    let disputed = event(
        "outcome.disputed",
        TH,
        "TH",
        Some("o-1"),
        "2020-01-15",
        json!({"by": "mid-term evaluation", "reason": "no evidence of the draft"}),
    );
    for (token, body) in [
        ("fo-token", registered(TH, "TH")),
        ("fo-token", step.clone()),
        ("eval-token", disputed.clone()),
    ] {
        let (status, answer) = post(token, body).await;
        assert_eq!(status, 202, "{answer}");
    }

    let (status, answer) = post("fo-token", retraction(&disputed)).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("outcome.disputed"));
    let view = |token: &'static str| {
        let request = http
            .get(service.url(&format!("/v1/actions/{TH}")))
            .bearer_auth(token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let flags = view("eval-token").await["flags"].to_string();
    assert!(flags.contains("disputed"), "the dispute stays: {flags}");

    let (status, answer) = post("eval-token", retraction(&disputed)).await;
    assert_eq!(
        status, 202,
        "the evaluator withdraws its own dispute: {answer}"
    );
    let (status, answer) = post("fo-token", retraction(&step)).await;
    assert_eq!(
        status, 202,
        "the field office withdraws its own step: {answer}"
    );
}

/// CONTRACT.md §11: an error never names an event, `seq` or country the caller may not read.
/// A Thai field office that reuses the event_id of a Lao event, or posts to a Lao Action under
/// TH, learns neither the Lao event's seq nor the Action's country from the answer.
#[tokio::test]
async fn rejection_messages_name_nothing_of_another_country() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path());
    let service = Service::start(&["--config", config.to_str().unwrap()]);
    let http = client();
    let post = |token: &'static str, body: Value| post_as(&http, &service, token, body);
    let lao = registered("MIEUX-LA-2016-02", "LA");
    let (status, answer) = post("admin-token", lao.clone()).await;
    assert_eq!(status, 202, "{answer}");

    let mut reused = registered(TH, "TH");
    reused["event_id"] = lao["event_id"].clone();
    let (status, answer) = post("fo-token", reused).await;
    assert_eq!(status, 409, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("seq") && !message.contains(" 1 "),
        "{message}"
    );

    let mut other = track(
        "MIEUX-LA-2016-02",
        "TH",
        "o-1",
        "legislation.drafting",
        "2019-01-10",
    );
    other["data"] = json!({"title": "Draft"});
    let (status, answer) = post("fo-token", other).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "country_mismatch");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("is in LA") && !message.contains(", LA"),
        "{message}"
    );
    assert!(
        !message.replace("MIEUX-LA-2016-02", "").contains("LA"),
        "{message}"
    );
}

/// `XX` marks a review of every country in the log; it is no country a review can be scoped to.
#[tokio::test]
async fn a_review_scoped_to_xx_is_refused() {
    let service = Service::start(&[]);
    let http = client();
    let (status, answer) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"country": "XX"}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_query");
    let (status, reviews) = get_json(&http, &service.url("/v1/reviews")).await;
    assert_eq!(status, 200);
    assert_eq!(reviews["reviews"], json!([]), "nothing was written");
    let (status, _) = get_json(&http, &service.url("/v1/actions?country=XX")).await;
    assert_eq!(status, 400);
}

/// Posts `body` to `/v1/events?wait=true` with `token`: the status and the answer.
async fn post_as(
    http: &reqwest::Client,
    service: &Service,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let response = http
        .post(service.url("/v1/events?wait=true"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.unwrap())
}

/// The pages' Content-Security-Policy allows no inline style: their stylesheet is the
/// service's own, linked and served as CSS without a token.
#[tokio::test]
async fn the_pages_link_a_stylesheet_the_service_serves_itself() {
    let service = Service::start(&["--demo"]);
    let http = client();
    let page = get_text(&http, &service.url("/")).await;
    assert!(
        page.contains("<link rel=\"stylesheet\" href=\"/style.css\">"),
        "{page}"
    );
    assert!(!page.contains("<style>"), "no inline style: {page}");
    let response = http.get(service.url("/style.css")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    assert!(response.text().await.unwrap().contains("font-family"));
}

/// Every event the outbox holds; each file must be whole JSON.
fn outbox_events(outbox: &std::path::Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(outbox) else {
        return Vec::new();
    };
    let mut events = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let text = std::fs::read(&path).unwrap();
        match serde_json::from_slice::<Value>(&text) {
            Ok(Value::Array(items)) => events.extend(items),
            Ok(item @ Value::Object(_)) => events.push(item),
            other => panic!("{} is not whole JSON: {other:?}", path.display()),
        }
    }
    events
}

fn submit_with(
    server: &str,
    token: &str,
    outbox: &std::path::Path,
    files: &[&std::path::Path],
) -> std::process::Output {
    std::process::Command::new(binary())
        .args(["submit", "--server", server, "--token", token, "--outbox"])
        .arg(outbox)
        .args(files)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_outbox_keeps_every_event_the_server_did_not_answer_for_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let file = dir.path().join("events.ndjson");
    let laos = "MIEUX-LA-2019-01";
    let events = [
        registered(TH, "TH"),
        track(
            TH,
            "TH",
            "vot-protocol",
            "legislation.pending",
            "2018-11-20",
        ),
        // Not the field office's country: the server refuses it by name.
        registered(laos, "LA"),
        track(TH, "TH", "focal-points", "network.created", "2019-02-01"),
    ];
    let ndjson: String = events.iter().map(|e| e.to_string() + "\n").collect();
    std::fs::write(&file, ndjson).unwrap();
    let ids = |events: &[Value]| -> HashSet<String> {
        events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect()
    };

    // Down: all kept.
    let down = format!("http://127.0.0.1:{}", free_port());
    let output = submit_with(&down, "fo-token", &outbox, &[&file]);
    assert!(!output.status.success());
    assert_eq!(ids(&outbox_events(&outbox)), ids(&events));

    // An expired token: `401` names no event, so every one stays.
    let service = Service::start(&["--config", auth_config(dir.path()).to_str().unwrap()]);
    let output = submit_with(&service.base, "expired-token", &outbox, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(ids(&outbox_events(&outbox)), ids(&events), "{stderr}");

    // The right token: the Laos event is refused by name (403) and leaves the outbox as
    // rejected; the rest is sent again and accepted.
    let output = submit_with(&service.base, "fo-token", &outbox, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "one was rejected: {stderr}");
    let laos_id = events[2]["event_id"].as_str().unwrap();
    assert!(
        stderr.contains(&format!("{laos_id}: rejected (403 forbidden)")),
        "{stderr}"
    );
    assert!(outbox_events(&outbox).is_empty(), "{stderr}");
    let stored_events = all_events_as(&client(), &service, "admin-token").await;
    let stored = ids(&stored_events);
    let mut expected = ids(&events);
    expected.remove(laos_id);
    assert_eq!(stored, expected);
}

#[test]
fn a_client_killed_while_it_writes_its_outbox_leaves_it_readable() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let file = dir.path().join("events.ndjson");
    // Ten files of a thousand: a kill as the first appears lands while others are written.
    let events: Vec<Value> = (0..10_000)
        .map(|n| track(TH, "TH", &format!("o-{n}"), "network.created", "2019-02-01"))
        .collect();
    let ndjson: String = events.iter().map(|e| e.to_string() + "\n").collect();
    std::fs::write(&file, ndjson).unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    let files_in = |dir: &std::path::Path| {
        std::fs::read_dir(dir).map_or(0, |entries| entries.filter_map(Result::ok).count())
    };
    let mut seen_partial = false;
    for round in 0..10u64 {
        let before = outbox_events(&outbox).len();
        let files_before = files_in(&outbox);
        let mut child = std::process::Command::new(binary())
            .args(["submit", "--server", &down, "--outbox"])
            .arg(&outbox)
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Half the rounds are killed as soon as the outbox changes (mid-way through writing
        // it), the others at a growing delay.
        let wait = match round % 2 {
            0 => Duration::from_secs(20), // Until the outbox changes.
            _ => Duration::from_millis(20 + round * 60),
        };
        let deadline = std::time::Instant::now() + wait;
        loop {
            let changed = round % 2 == 0 && files_in(&outbox) != files_before;
            if changed || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the moment, every file of the outbox is whole.
        let added = outbox_events(&outbox).len() - before;
        let cut_short = std::fs::read_dir(&outbox).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|entry| entry.path().extension().is_some_and(|ext| ext == "partial"))
        });
        seen_partial |= cut_short || (added > 0 && added < events.len());
    }
    assert!(
        seen_partial,
        "some runs were killed while writing the outbox"
    );

    // With the server up, everything is delivered exactly once and the outbox empties.
    let service = Service::start(&[]);
    let output = std::process::Command::new(binary())
        .args(["submit", "--server", &service.base, "--outbox"])
        .arg(&outbox)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(outbox_events(&outbox).is_empty());
    let stored = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { all_events(&client(), &service).await });
    assert_eq!(stored.len(), events.len(), "each event once");
}
