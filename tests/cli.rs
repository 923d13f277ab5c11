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

/// Copies a stopped store's data directory (sled's files and the kept snapshot links).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_rebuild_killed_at_any_point_is_refused_by_serve_then_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("generated.ndjson");
    std::fs::write(&file, generated_export(60_000)).unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    ok(impact(&[
        "import",
        "--data-dir",
        data,
        file.to_str().unwrap(),
    ]));

    // The reference: a clean rebuild of a copy, timed to know where to kill.
    let clean_dir = dir.path().join("clean");
    copy_dir(&data_dir, &clean_dir);
    let started = std::time::Instant::now();
    ok(impact(&[
        "rebuild",
        "--data-dir",
        clean_dir.to_str().unwrap(),
    ]));
    let took = started.elapsed();
    let clean = records(&clean_dir);
    assert_eq!(clean.len(), 10_000);

    let config = dir.path().join("impact.toml");
    std::fs::write(&config, "[review]\nschedule = \"off\"\n").unwrap();
    let mut refused = 0;
    // Kill points spread over the clean run's time, in an order no run could predict.
    let mut point = (std::process::id() as u64 * 2_654_435_761) % 1000;
    for _ in 0..6 {
        point = (point * 7919 + 104_729) % 1000;
        let mut rebuild = Command::new(binary())
            .args(["rebuild", "--data-dir", data])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(took.mul_f64(point as f64 / 1000.0));
        let _ = rebuild.kill();
        let finished = rebuild.wait().unwrap().success();
        let served = Command::new(binary())
            .args(["serve", "--http", "127.0.0.1:0", "--data-dir", data])
            .args(["--config", config.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let served = wait_a_moment(served);
        match served {
            Some(output) => {
                assert!(!finished, "serve refused a store whose rebuild finished");
                let message = String::from_utf8_lossy(&output.stderr);
                assert!(
                    message.contains("did not finish") && message.contains("impact rebuild"),
                    "{message}"
                );
                let export = impact(&["export", "--data-dir", data]);
                assert!(!export.status.success(), "export refuses it too");
                refused += 1;
            }
            None => {
                // Serving: the rebuild had finished, or was killed before it marked the store.
                let views = records(&data_dir);
                assert!(views == clean, "a store that serves has the log's views");
            }
        }
    }
    assert!(
        refused > 0,
        "no kill landed inside a rebuild ({took:?} each)"
    );

    ok(impact(&["rebuild", "--data-dir", data]));
    assert!(
        records(&data_dir) == clean,
        "a rebuild run again after kills gives byte-identical views"
    );
}

/// The output of a `serve` that exits within two seconds, or `None` (after stopping it) when
/// it is still running then, which means it opened the store and serves.
fn wait_a_moment(mut child: std::process::Child) -> Option<std::process::Output> {
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// CONTRACT.md §11: the CLI's tables show a typed title as text: no escape sequence, newline
/// or bidirectional override reaches the terminal. An escape sequence is refused at the door
/// (a control character in text); a line break and a bidirectional override are text the
/// service takes, and the CLI prints them flat.
#[tokio::test]
async fn a_title_with_terminal_escapes_prints_as_one_plain_line() {
    let mut service = Service::start(&[]);
    let http = client();
    let action = "MIEUX-TH-2023-01";
    let mut escaped = registered(action, "TH");
    escaped["data"]["title"] = json!("Study \u{1b}[31mvisit\u{1b}[0m");
    let (status, answer) = post_json(&http, &service.url("/v1/events?wait=true"), &escaped).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "schema_violation");
    let mut event = registered(action, "TH");
    event["data"]["title"] = json!("Study [31mvisit[0m\nFAKE  ROW\u{202e}gnp");
    let (status, answer) = post_json(&http, &service.url("/v1/events?wait=true"), &event).await;
    assert_eq!(status, 202, "{answer}");
    service.terminate();
    let data = service.data_dir.to_str().unwrap().to_owned();
    for command in ["status", "history"] {
        let printed = ok(impact(&[command, action, "--data-dir", &data]));
        assert!(
            !printed.contains('\u{1b}') && !printed.contains('\u{202e}'),
            "{printed:?}"
        );
        assert!(
            !printed.lines().any(|line| line.starts_with("FAKE")),
            "{printed}"
        );
        assert!(
            printed.contains("Study [31mvisit[0m FAKE  ROWgnp"),
            "{printed}"
        );
    }
}
