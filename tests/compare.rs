//! `GET /v1/actions/{id}/compare` (CONTRACT.md §4.5) and `GET /v1/reviews/{id}/changes` (§5.1)
//! against answers worked out by hand for a known history, with a retraction seen under one side
//! only. Real binary, real store.

mod common;

use common::*;
use serde_json::{json, Value};

const THAI: &str = "MIEUX-TH-2014-01";

async fn post(service: &Service, events: Value) {
    admin_posts(service, events).await;
}

async fn get(service: &Service, path: &str, token: &str) -> (u16, Value) {
    let response = client()
        .get(service.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// seq 1 registered; 2 `drafting` (2017-06-01); 3 `pending` (2018-11-20) expecting `adopted` by
/// 2019-05-31. The event that retracts seq 3 comes later.
async fn history(service: &Service) -> Value {
    let pending = {
        let mut event = track(
            THAI,
            "TH",
            "vot-protocol",
            "legislation.pending",
            "2018-11-20",
        );
        event["data"] = json!({"expected": {"stage": "adopted", "by": "2019-05-31"}});
        event
    };
    post(
        service,
        json!([
            registered(THAI, "TH"),
            track(
                THAI,
                "TH",
                "vot-protocol",
                "legislation.drafting",
                "2017-06-01"
            ),
            pending.clone()
        ]),
    )
    .await;
    pending
}

/// seq 4 retracts `pending`; seq 5 a mechanism `established` (2019-02-01).
async fn retraction_and_a_new_outcome(service: &Service, pending: &Value) {
    let retraction = event(
        "event.retracted",
        THAI,
        "TH",
        None,
        "2019-01-10",
        json!({"target_event_id": pending["event_id"], "reason": "the bill was not tabled yet"}),
    );
    post(
        service,
        json!([
            retraction,
            track(
                THAI,
                "TH",
                "focal-points",
                "mechanism.established",
                "2019-02-01"
            )
        ]),
    )
    .await;
}

#[tokio::test]
async fn compare_answers_what_changed_between_two_points_as_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &principals_config(dir.path(), "")]);
    let pending = history(&service).await;
    retraction_and_a_new_outcome(&service, &pending).await;

    // a: as of 2019-03-01 as known at seq 3, before the retraction; b: as of 2019-03-01 now.
    let path =
        format!("/v1/actions/{THAI}/compare?a_as_of=2019-03-01&a_until_seq=3&b_as_of=2019-03-01");
    let (status, body) = get(&service, &path, "fo-token").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["a"],
        json!({"as_of": "2019-03-01", "until_seq": 3, "known_at": null, "reference_date": "2019-03-01"})
    );
    assert_eq!(
        body["b"],
        json!({"as_of": "2019-03-01", "until_seq": null, "known_at": null, "reference_date": "2019-03-01"})
    );
    // Under a, `pending` stands with its stated expectation; under b it is retracted, so the
    // outcome is back at `drafting`, and the expectation is the default: the next stage,
    // `tabled`, 180 days after 2017-06-01.
    let expected_outcomes = json!([
        {"outcome_id": "focal-points", "change": "added", "fields": {
            "event_count": [null, 1],
            "evidence_count": [null, 0],
            "highest_stage": [null, "established"],
            "last_event_on": [null, "2019-02-01"],
            "stage": [null, "established"],
            "stage_since": [null, "2019-02-01"],
            "state": [null, "achieved"],
            "title": [null, "focal-points"],
            "track": [null, "mechanism"],
            "verification": [null, "reported"]
        }},
        {"outcome_id": "vot-protocol", "change": "changed", "fields": {
            "event_count": [2, 1],
            "expected": [
                {"stage": "adopted", "by": "2019-05-31", "date_source": "explicit"},
                {"stage": "tabled", "by": "2017-11-28", "date_source": "defaulted"}
            ],
            "highest_stage": ["pending", "drafting"],
            "last_event_on": ["2018-11-20", "2017-06-01"],
            "stage": ["pending", "drafting"],
            "stage_since": ["2018-11-20", "2017-06-01"]
        }}
    ]);
    assert_eq!(body["outcomes"], expected_outcomes, "{body:#}");
    assert_eq!(
        body["flags"],
        json!({"added": [
            {"outcome_id": "vot-protocol", "flag": "overdue", "detail": "tabled expected by 2017-11-28, 458 days ago"},
            {"outcome_id": "vot-protocol", "flag": "stale", "detail": "no report since 2017-06-01, 638 days ago"}
        ], "removed": []}),
        "{body:#}"
    );

    // The same two points the other way round: every pair swapped, added becomes removed.
    let (_, reverse) = get(
        &service,
        &format!("/v1/actions/{THAI}/compare?b_as_of=2019-03-01&b_until_seq=3&a_as_of=2019-03-01"),
        "eval-token",
    )
    .await;
    assert_eq!(reverse["outcomes"][0]["change"], "removed");
    assert_eq!(
        reverse["outcomes"][1]["fields"]["stage"],
        json!(["drafting", "pending"])
    );
    assert_eq!(reverse["flags"]["removed"], body["flags"]["added"]);

    // Nothing differs between a point and itself.
    let (_, same) = get(
        &service,
        &format!("/v1/actions/{THAI}/compare?a_until_seq=5"),
        "admin-token",
    )
    .await;
    assert_eq!(same["outcomes"], json!([]), "{same}");
    assert_eq!(same["flags"], json!({"added": [], "removed": []}));

    // A side before the Action's first event has no outcome: everything is added.
    let (status, from_nothing) = get(
        &service,
        &format!("/v1/actions/{THAI}/compare?a_as_of=2010-01-01"),
        "admin-token",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(from_nothing["outcomes"][0]["change"], "added");
    assert_eq!(from_nothing["outcomes"][1]["change"], "added");
}

#[tokio::test]
async fn compare_refuses_bad_sides_other_countries_and_an_action_on_neither_side() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &principals_config(dir.path(), "")]);
    history(&service).await;
    let lao = "MIEUX-LA-2019-01";
    post(&service, json!([registered(lao, "LA")])).await;
    let cases = [
        (
            format!("/v1/actions/{THAI}/compare?a_as_of=2019-02-30"),
            "admin-token",
            400,
            "bad_query",
            "a_as_of",
        ),
        (
            format!("/v1/actions/{THAI}/compare?b_until_seq=x"),
            "admin-token",
            400,
            "bad_query",
            "b_until_seq",
        ),
        (
            format!("/v1/actions/{THAI}/compare?as_of=2019-01-01"),
            "admin-token",
            400,
            "bad_query",
            "a_as_of",
        ),
        (
            format!("/v1/actions/{THAI}/compare?a_as_of=2000-01-01&b_as_of=2000-01-01"),
            "admin-token",
            404,
            "not_found",
            "either point in time",
        ),
        (
            format!("/v1/actions/{lao}/compare"),
            "fo-token",
            403,
            "forbidden",
            "",
        ),
        (
            "/v1/actions/MIEUX-XX-NOPE/compare".to_owned(),
            "admin-token",
            404,
            "not_found",
            "",
        ),
    ];
    for (path, token, status, code, says) in cases {
        let (got, body) = get(&service, &path, token).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{path}: {message}");
    }
}

async fn review(service: &Service, request: Value) -> String {
    let response = client()
        .post(service.url("/v1/reviews"))
        .bearer_auth("eval-token")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let report: Value = response.json().await.unwrap();
    report["review_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn changes_since_the_previous_review_of_the_same_scope_as_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &principals_config(dir.path(), "")]);
    let pending = history(&service).await;
    let first = review(&service, json!({"as_of": "2019-03-01"})).await;
    // A review of another scope in between is not the previous one of the whole programme.
    let thai_only = review(&service, json!({"as_of": "2019-03-01", "country": "TH"})).await;
    retraction_and_a_new_outcome(&service, &pending).await;
    let second = review(&service, json!({"as_of": "2019-03-01"})).await;

    let (status, first_changes) = get(
        &service,
        &format!("/v1/reviews/{first}/changes"),
        "eval-token",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(first_changes["previous_review_id"], Value::Null);
    assert_eq!(first_changes["totals"]["outcomes"], json!([null, 1]));
    assert_eq!(
        first_changes["findings"],
        json!({"added": [], "resolved": []})
    );

    let (_, changes) = get(
        &service,
        &format!("/v1/reviews/{second}/changes"),
        "admin-token",
    )
    .await;
    assert_eq!(changes["review_id"], second.as_str());
    assert_eq!(
        changes["previous_review_id"],
        first.as_str(),
        "not {thai_only}"
    );
    assert_eq!(
        changes["totals"],
        json!({"actions": [1, 1], "outcomes": [1, 2], "in_progress": [1, 1], "achieved": [0, 1],
               "sustained": [0, 0], "regressed": [0, 0], "verified": [0, 0], "disputed": [0, 0],
               "reported": [1, 2]})
    );
    let added: Vec<(&str, &str)> = changes["findings"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["outcome_id"].as_str().unwrap(),
                f["flag"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        added,
        [("vot-protocol", "overdue"), ("vot-protocol", "stale")]
    );
    assert_eq!(changes["findings"]["resolved"], json!([]));
    let highlights = &changes["highlights"];
    assert_eq!(highlights["added"].as_array().unwrap().len(), 1);
    assert_eq!(highlights["added"][0]["outcome_id"], "focal-points");
    assert_eq!(highlights["added"][0]["state"], "achieved");
    assert_eq!(highlights["removed"], json!([]));

    // The bill is tabled after all: both findings are resolved by the next review.
    post(
        &service,
        json!([track(
            THAI,
            "TH",
            "vot-protocol",
            "legislation.tabled",
            "2019-02-15"
        )]),
    )
    .await;
    let third = review(&service, json!({"as_of": "2019-03-01"})).await;
    let (_, resolved) = get(
        &service,
        &format!("/v1/reviews/{third}/changes"),
        "eval-token",
    )
    .await;
    assert_eq!(resolved["previous_review_id"], second.as_str());
    assert_eq!(resolved["findings"]["added"], json!([]));
    assert_eq!(
        resolved["findings"]["resolved"],
        changes["findings"]["added"]
    );
    assert_eq!(resolved["totals"]["outcomes"], json!([2, 2]));

    let markdown = client()
        .get(service.url(&format!("/v1/reviews/{third}/changes?format=markdown")))
        .bearer_auth("eval-token")
        .send()
        .await
        .unwrap();
    assert_eq!(markdown.status(), 200);
    assert!(markdown.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    let text = markdown.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "Since the previous review of the same scope, {second}"
        )),
        "{text}"
    );
    assert!(
        text.contains("## Findings resolved\n\n- overdue MIEUX-TH-2014-01 / vot-protocol"),
        "{text}"
    );

    let (status, body) = get(
        &service,
        &format!("/v1/reviews/{third}/changes"),
        "fo-token",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = get(&service, "/v1/reviews/no-such-review/changes", "eval-token").await;
    assert_eq!(status, 404);
}
