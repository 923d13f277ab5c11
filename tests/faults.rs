//! Faults are inputs too (CONTRACT.md §11, "a store that cannot write says so and recovers"):
//! a full disk, a failed write, a failed sync. Each test drives the real binary on real sled,
//! makes the fault happen for real (a small tmpfs filled up; the store's fault points, built
//! only with the `fault-injection` feature, for a failed `apply_batch` or sync), and checks
//! that every event answered `202` is stored exactly once, that nothing the fault covered was
//! acknowledged, and that writes come back without anyone's help.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn config_file(dir: &Path, min_free_mib: u64) -> PathBuf {
    let path = dir.join("impact.toml");
    std::fs::write(
        &path,
        format!("[server]\nmin_free_mib = {min_free_mib}\n[review]\nschedule = \"off\"\n"),
    )
    .unwrap();
    path
}

/// An outcome event with a description of `padding` bytes, so the disk fills in few requests.
fn padded(action: &str, n: usize, padding: usize) -> Value {
    let mut event = track(
        action,
        "TH",
        &format!("o-{n}"),
        "legislation.drafting",
        "2020-01-01",
    );
    event["data"] = json!({"description": "x".repeat(padding)});
    event
}

/// Posts `event` alone and returns the status and the error code, if any.
async fn post_one(http: &reqwest::Client, service: &Service, event: &Value) -> (u16, String) {
    let (status, body) = post_json(http, &service.url("/v1/events"), event).await;
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    (status, code)
}

/// How often each event_id is in the log.
async fn log_counts(http: &reqwest::Client, service: &Service) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in all_events(http, service).await {
        *counts
            .entry(event["event_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

fn assert_each_once(counts: &HashMap<String, usize>, accepted: &[String]) {
    for id in accepted {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "event {id} was answered 202 and must be stored exactly once"
        );
    }
    assert!(counts.values().all(|count| *count == 1), "no event twice");
}

/// Each file under `dir` with its bytes: to show a refused start changed nothing.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// A tmpfs of `mib` MiB, unmounted when dropped (the suite runs as root, as CI does).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount (the suite runs as root)");
        assert!(status.success(), "mount a {mib} MiB tmpfs (needs root)");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free_mib(&self) -> u64 {
        impact::store::health::free_bytes(self.path()).unwrap() >> 20
    }

    /// Writes a filler file until `mib` MiB are left free (or the disk is full).
    fn fill_to(&self, name: &str, mib: u64) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join(name))
            .unwrap();
        let chunk = vec![0u8; 256 * 1024];
        while self.free_mib() > mib {
            if file.write_all(&chunk).is_err() {
                break;
            }
            let _ = file.flush();
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_before_it_is_full_and_a_start_while_full_changes_nothing() {
    let disk = SmallDisk::mount(48);
    let data_dir = disk.path().join("data");
    let config = config_file(disk.path(), 8);
    let config_arg = config.to_str().unwrap();
    let mut service = Service::start_in(&data_dir, &["--config", config_arg]);
    let http = client();
    let action = "MIEUX-TH-2020-01";
    let (status, _) = post_one(&http, &service, &registered(action, "TH")).await;
    assert_eq!(status, 202);

    // Fill the disk to just above the reserve, then post until the service refuses.
    disk.fill_to("filler", 12);
    let mut accepted = Vec::new();
    let mut refused = None;
    for n in 0..20_000 {
        let event = padded(action, n, 4000);
        let (status, code) = post_one(&http, &service, &event).await;
        match status {
            202 => accepted.push(event["event_id"].as_str().unwrap().to_owned()),
            503 => {
                assert_eq!(code, "unavailable");
                refused = Some(disk.free_mib());
                break;
            }
            other => panic!("a post on a filling disk got {other} {code}"),
        }
    }
    let free_at_refusal = refused.expect("the service refused writes as the disk filled");
    assert!(
        free_at_refusal >= 1,
        "refused before the disk was full ({free_at_refusal} MiB left)"
    );
    // Writes are down, reads go on, and /readyz says which.
    let (status, ready) = get_json(&http, &service.url("/readyz")).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["writes"], "down");
    assert_eq!(ready["reads"], "up");
    assert!(ready["writes_down_because"]
        .as_str()
        .unwrap()
        .contains("min_free_mib"));
    let (status, view) = get_json(&http, &service.url(&format!("/v1/actions/{action}"))).await;
    assert_eq!(status, 200, "reads go on: {view}");
    let metrics = get_text(&http, &service.url("/metrics")).await;
    assert!(metrics.contains("impact_writes_up 0"), "{metrics}");

    // Space freed: writes come back by themselves, without a restart.
    let pid = service.pid();
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let event = padded(action, 30_000, 16);
    eventually(10, async || {
        (post_one(&http, &service, &event).await.0 == 202).then_some(())
    })
    .await;
    accepted.push(event["event_id"].as_str().unwrap().to_owned());
    assert_eq!(service.pid(), pid);

    // Full again, killed, started while still full: refused, and not a byte changed.
    disk.fill_to("filler", 4);
    // The free space is measured every 100 ms: the reserve absorbs what is written meanwhile.
    eventually(5, async || {
        let (_, ready) = get_json(&http, &service.url("/readyz")).await;
        (ready["writes"] == "down").then_some(())
    })
    .await;
    let (status, _) = post_one(&http, &service, &padded(action, 30_001, 16)).await;
    assert_eq!(status, 503);
    service.kill9();
    let before = files(&data_dir);
    let started = Command::new(binary())
        .args(["serve", "--http", "127.0.0.1:0", "--config", config_arg])
        .arg("--data-dir")
        .arg(&data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!started.status.success(), "a start below the reserve fails");
    let message = String::from_utf8_lossy(&started.stderr);
    assert!(
        message.contains("server.min_free_mib") && message.contains("nothing in it was changed"),
        "{message}"
    );
    assert!(
        before == files(&data_dir),
        "the refused start changed no file"
    );

    // Space freed: every event answered 202 is there exactly once, and the views are the log's.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let mut service = Service::start_in(&data_dir, &["--config", config_arg]);
    let counts = log_counts(&http, &service).await;
    assert_each_once(&counts, &accepted);
    service.terminate();
    assert_views_equal_a_rebuild(&data_dir);
}

/// Makes the store's next `point` ("apply" or "sync") fail while 40 clients post, and checks
/// the crash-only rule: nothing the failure covered is acknowledged, nothing acknowledged
/// before is lost, and the service restarts itself on the same port and takes writes again.
async fn a_failed_store_write_is_crash_only(point: &str) {
    let mut service = Service::start(&[]);
    let http = client();
    let action = "MIEUX-TH-2021-01";
    let mut accepted = Vec::new();
    let registration = registered(action, "TH");
    assert_eq!(post_one(&http, &service, &registration).await.0, 202);
    accepted.push(registration["event_id"].as_str().unwrap().to_owned());
    let pid = service.pid();

    std::fs::write(service.data_dir.join(format!("fault-{point}")), b"").unwrap();
    let posts = (0..40).map(|n| {
        let (http, url) = (http.clone(), service.url("/v1/events"));
        let event = padded(action, n, 16);
        async move {
            let (status, body) = post_json(&http, &url, &event).await;
            (event, status, body)
        }
    });
    let answers = futures::future::join_all(posts).await;
    let mut refused = Vec::new();
    for (event, status, body) in answers {
        match status {
            202 => accepted.push(event["event_id"].as_str().unwrap().to_owned()),
            503 => {
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                refused.push(event);
            }
            other => panic!("a post during a failed {point} got {other}: {body}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "the failed {point} was answered 503, not acknowledged"
    );

    // The service comes back by itself: same process (it replaced itself), same port.
    let event = padded(action, 1000, 16);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = post_one(&http, &service, &event).await;
        if status == 202 {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    accepted.push(event["event_id"].as_str().unwrap().to_owned());
    assert_eq!(service.pid(), pid, "the service restarted itself in place");
    let (status, ready) = get_json(&http, &service.url("/readyz")).await;
    assert_eq!(status, 200, "{ready}");

    let counts = log_counts(&http, &service).await;
    assert_each_once(&counts, &accepted);
    let id = |event: &Value| event["event_id"].as_str().unwrap().to_owned();
    if point == "apply" {
        // Nothing of a batch whose write failed was applied.
        assert!(
            refused.iter().any(|event| !counts.contains_key(&id(event))),
            "the failed batch is not in the log"
        );
    }
    // Each refused event sent again is stored once: a batch written before its sync failed
    // may be in the log after the restart, and then the answer is `duplicate`.
    for event in &refused {
        let (status, body) = post_json(&http, &service.url("/v1/events"), event).await;
        assert_eq!(status, 202, "{body}");
        accepted.push(id(event));
    }
    assert_each_once(&log_counts(&http, &service).await, &accepted);
    service.terminate();
    assert_views_equal_a_rebuild(&service.data_dir);
}

#[tokio::test]
async fn a_failed_sync_is_never_acknowledged_and_writes_come_back() {
    a_failed_store_write_is_crash_only("sync").await;
}

#[tokio::test]
async fn a_failed_batch_write_is_never_acknowledged_and_writes_come_back() {
    a_failed_store_write_is_crash_only("apply").await;
}

/// Without a reserve the disk really fills: sled's own writes fail. That is a failed write like
/// any other (crash-only: `503`, the service replaces itself), and the start on the still-full
/// disk must not destroy the store (the bug this guards against: an unfinished snapshot left
/// by that start made every later open fail with "Read corrupted data").
#[tokio::test]
async fn a_disk_that_fills_without_a_reserve_loses_nothing_acknowledged() {
    let disk = SmallDisk::mount(32);
    let data_dir = disk.path().join("data");
    let config = config_file(disk.path(), 0);
    let config_arg = config.to_str().unwrap();
    let mut service = Service::start_in(&data_dir, &["--config", config_arg]);
    let http = client();
    let action = "MIEUX-TH-2022-01";
    let registration = registered(action, "TH");
    assert_eq!(post_one(&http, &service, &registration).await.0, 202);
    let mut accepted = vec![registration["event_id"].as_str().unwrap().to_owned()];

    disk.fill_to("filler", 3);
    let mut refused = false;
    for n in 0..20_000 {
        let event = padded(action, n, 4000);
        let response = http
            .post(service.url("/v1/events"))
            .timeout(Duration::from_secs(20))
            .json(&event)
            .send()
            .await;
        let Ok(response) = response else {
            break; // the process is replacing itself, or its restart on the full disk failed
        };
        match response.status().as_u16() {
            202 => accepted.push(event["event_id"].as_str().unwrap().to_owned()),
            503 => {
                refused = true;
                break;
            }
            other => panic!(
                "a post on a full disk got {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    assert!(refused, "a full disk is answered 503");

    // Give it space again: writes come back (the restarted process may have given up opening
    // the store on the full disk; then it is started again, as a supervisor would).
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let event = padded(action, 50_000, 16);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if service.exited().is_some() {
            service.restart();
        }
        let sent = http
            .post(service.url("/v1/events"))
            .timeout(Duration::from_secs(5))
            .json(&event)
            .send()
            .await;
        if sent.is_ok_and(|response| response.status() == 202) {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    accepted.push(event["event_id"].as_str().unwrap().to_owned());
    assert_each_once(&log_counts(&http, &service).await, &accepted);
    service.terminate();
    assert_views_equal_a_rebuild(&data_dir);
}

/// What a reader of `/v1/events` saw: each seq and the event it named, and the highest
/// `log_position` `/readyz` gave.
#[derive(Default)]
struct Seen {
    events: HashMap<u64, String>,
    position: u64,
}

/// Reads the log from `after` and `/readyz` as fast as it can until told to stop, keeping
/// what it was shown. Errors (the service is being killed) only end a read.
async fn follow(
    base: String,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let http = client();
    let mut after = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let page = async {
            let url = format!("{base}/v1/events?after={after}&limit=10000");
            let page: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            let ready: Value = http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some((page, ready))
        };
        let Some((page, ready)) = page.await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let mut seen = seen.lock().unwrap();
        for event in page["events"].as_array().unwrap() {
            let seq = event["seq"].as_u64().unwrap();
            seen.events
                .insert(seq, event["event_id"].as_str().unwrap().to_owned());
            after = after.max(seq);
        }
        seen.position = seen
            .position
            .max(ready["log_position"].as_u64().unwrap_or(0));
    }
}

/// Posts batches of registrations as fast as it can until told to stop, ignoring failures.
async fn post_until(
    base: String,
    writer: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let http = client();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let batch: Vec<Value> = (0..20)
            .map(|i| registered(&format!("MIEUX-TH-{:06}", writer * 100_000 + n + i), "TH"))
            .collect();
        n += 20;
        let _ = http
            .post(format!("{base}/v1/events"))
            .json(&batch)
            .send()
            .await;
    }
}

/// CONTRACT.md §11, "a seq once shown is never reused": a reader follows the log and
/// `/readyz` while writers post and the service is killed (-9) again and again. The drive is
/// made slow (every sync waits 30 ms before sled's flush, a fault point), so batches written
/// and not yet synced are in sled's memory only, for readers to see and a crash to lose.
/// Every seq the reader was shown names the same event afterwards, and no position it was
/// shown is ever taken back.
#[tokio::test]
async fn a_seq_a_reader_was_shown_names_the_same_event_after_any_crash() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let mut service = Service::start(&[]);
    std::fs::write(service.data_dir.join("fault-slow-sync"), "30").unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    for round in 0..8u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for writer in 0..4 {
            tasks.push(tokio::spawn(post_until(
                service.base.clone(),
                (round as usize) * 4 + writer,
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(follow(
            service.base.clone(),
            seen.clone(),
            stop.clone(),
        )));
        tokio::time::sleep(Duration::from_millis(300 + (round * 137) % 400)).await;
        service.kill9();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        service.restart();
    }
    let http = client();
    let log: HashMap<u64, String> = all_events(&http, &service)
        .await
        .into_iter()
        .map(|event| {
            (
                event["seq"].as_u64().unwrap(),
                event["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let seen = seen.lock().unwrap();
    assert!(
        seen.events.len() > 1000,
        "the reader saw {} events",
        seen.events.len()
    );
    let moved: Vec<_> = seen
        .events
        .iter()
        .filter(|(seq, id)| log.get(seq) != Some(id))
        .map(|(seq, id)| format!("seq {seq}: shown {id}, now {:?}", log.get(seq)))
        .collect();
    assert!(
        moved.is_empty(),
        "{} seqs changed: {:?}",
        moved.len(),
        &moved[..moved.len().min(5)]
    );
    assert!(
        log.len() as u64 >= seen.position,
        "the log ({} events) is behind a position shown ({})",
        log.len(),
        seen.position
    );
}
