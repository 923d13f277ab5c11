//! The command line on a stopped service's data: export and import, rebuild, offline reads and
//! reviews, checked against the HTTP API and against each other.

mod common;

use common::*;
use impact::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn impact(args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn records(data_dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let store = Store::open(data_dir, 16 << 20).unwrap();
    store.record_bytes().map(Result::unwrap).collect()
}

#[tokio::test]
async fn offline_reads_print_exactly_what_the_api_gives() {
    let mut service = Service::start(&["--demo"]);
    let http = client();
    let action = "MIEUX-TH-2014-01";
    let api_view = get_text(
        &http,
        &service.url(&format!("/v1/actions/{action}?as_of=2020-01-01")),
    )
    .await;
    let api_history = get_text(
        &http,
        &service.url(&format!("/v1/actions/{action}/events?until_seq=5")),
    )
    .await;
    let remote = ok(impact(&[
        "status",
        action,
        "--as-of",
        "2020-01-01",
        "--server",
        &service.base,
        "--json",
    ]));
    assert_eq!(remote.trim_end(), api_view);
    service.kill9();
    let data_dir = service.data_dir.to_str().unwrap().to_owned();
    let offline_view = ok(impact(&[
        "status",
        action,
        "--as-of",
        "2020-01-01",
        "--data-dir",
        &data_dir,
        "--json",
    ]));
    assert_eq!(offline_view.trim_end(), api_view);
    let offline_history = ok(impact(&[
        "history",
        action,
        "--until-seq",
        "5",
        "--data-dir",
        &data_dir,
        "--json",
    ]));
    assert_eq!(offline_history.trim_end(), api_history);
    let table = ok(impact(&["status", action, "--data-dir", &data_dir]));
    assert!(
        table.contains("vot-protocol") && table.contains("FLAGS"),
        "{table}"
    );
    let missing = impact(&["status", "MIEUX-NONE-01", "--data-dir", &data_dir]);
    assert!(!missing.status.success());

    let markdown = ok(impact(&[
        "review",
        "--as-of",
        "2026-10-01",
        "--country",
        "TH",
        "--format",
        "markdown",
        "--data-dir",
        &data_dir,
    ]));
    assert!(
        markdown.contains("# Impact review") && markdown.contains("| TH |"),
        "{markdown}"
    );
    let json_report: Value = serde_json::from_str(&ok(impact(&[
        "review",
        "--as-of",
        "2026-10-01",
        "--data-dir",
        &data_dir,
    ])))
    .unwrap();
    assert_eq!(json_report["totals"]["actions"], 6);
    service.restart();
    let (_, reviews) = get_json(&http, &service.url("/v1/reviews")).await;
    assert_eq!(
        reviews["reviews"].as_array().unwrap().len(),
        2,
        "offline reviews are appended to the log"
    );
}

#[tokio::test]
async fn export_then_import_reproduces_the_log_and_importing_again_changes_nothing() {
    let mut service = Service::start(&["--demo"]);
    let http = client();
    let (status, _) = post_json(
        &http,
        &service.url("/v1/reviews"),
        &json!({"as_of": "2026-10-01"}),
    )
    .await;
    assert_eq!(status, 201);
    service.kill9();
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("log.ndjson");
    let source = service.data_dir.to_str().unwrap();
    ok(impact(&[
        "export",
        "--data-dir",
        source,
        "--out",
        exported.to_str().unwrap(),
    ]));
    let target = dir.path().join("copy");
    let output = impact(&[
        "import",
        "--data-dir",
        target.to_str().unwrap(),
        exported.to_str().unwrap(),
    ]);
    ok(output);
    let again = dir.path().join("again.ndjson");
    ok(impact(&[
        "export",
        "--data-dir",
        target.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(&again).unwrap(),
        "same events, same seq, same bytes"
    );
    assert_eq!(records(&service.data_dir), records(&target), "same views");

    let output = impact(&[
        "import",
        "--data-dir",
        target.to_str().unwrap(),
        exported.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("imported 0 events, 25 already stored"),
        "{stderr}"
    );
    ok(impact(&[
        "export",
        "--data-dir",
        target.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

/// Stored events as an export would hold them, for a store that never saw them.
fn generated_export(count: usize) -> String {
    let mut lines = String::with_capacity(count * 400);
    let stages = ["awareness", "applied", "routine", "lapsed", "diffused"];
    let mut ids: Vec<String> = Vec::new();
    for n in 0..count {
        let action = format!("MIEUX-TH-{:05}", n % 10_000);
        let id = new_id();
        let day = 1 + (n * 7919) % 28;
        let mut event = if n < 10_000 {
            registered(&action, "TH")
        } else if n % 97 == 0 && n > 20_000 {
            // Retract the registration made for this Action.
            let target = &ids[n % 10_000];
            event(
                "event.retracted",
                &action,
                "TH",
                None,
                "2024-01-01",
                json!({"target_event_id": target, "reason": "generated"}),
            )
        } else {
            let outcome = format!("o-{}", (n / 10_000) % 4);
            let data = if n % 5 == 0 {
                json!({"expected": {"stage": "routine", "by": "2026-01-01"}, "title": "Practice"})
            } else {
                json!({})
            };
            event(
                &format!("practice.{}", stages[(n / 7) % stages.len()]),
                &action,
                "TH",
                Some(&outcome),
                &format!("20{:02}-{:02}-{day:02}", 15 + (n * 31) % 10, 1 + n % 12),
                data,
            )
        };
        event["event_id"] = json!(id);
        event["seq"] = json!(n + 1);
        event["recorded_at"] = json!(format!(
            "2026-01-01T00:00:{:02}.{:06}Z",
            (n / 1_000_000) % 60,
            n % 1_000_000
        ));
        event["stream_seq"] = Value::Null;
        event["submitted_by"] = json!("generator");
        ids.push(id);
        lines.push_str(&event.to_string());
        lines.push('\n');
    }
    lines
}

#[test]
fn an_import_of_100k_events_then_a_rebuild_gives_byte_identical_views() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("generated.ndjson");
    std::fs::write(&file, generated_export(100_000)).unwrap();
    let data_dir = dir.path().join("data");
    let output = impact(&[
        "import",
        "--data-dir",
        data_dir.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("imported 100000 events"), "{stderr}");
    let incremental = records(&data_dir);
    assert_eq!(incremental.len(), 10_000);
    let output = impact(&["rebuild", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rebuilt = records(&data_dir);
    assert!(
        incremental == rebuilt,
        "a rebuild gives byte-identical views"
    );
}
