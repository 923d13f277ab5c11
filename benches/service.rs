//! Service benchmarks (issues: HTTP service, NATS bus). Each figure is printed beside a ceiling
//! measured in the same run on the same machine:
//! - HTTP, embedded mode, 10,000 Actions: `GET /v1/actions/{id}` vs `GET /healthz`, 64
//!   concurrent connections; `POST /v1/events` in batches of 1,000, durable on answer;
//! - pages, embedded mode, 10,000 Actions: `/actions/{id}`, `/` and
//!   `/v1/actions/{id}/compare` each beside its JSON twin, and the size of a 50-event page;
//! - exports, 10,000 Actions and 50,000 outcomes: the CSV, the XLSX and the IATI XML beside `GET /v1/actions`
//!   of the same scope, and the service's memory while the CSV streams;
//! - NATS: raw JetStream publish of N ready-made events with PubAcks awaited in a window, vs the
//!   same N events published while the service runs, timed until the last is applied and
//!   durable in sled; between them, the broker's own end to end (the same events published
//!   while a consumer that only counts them drains the stream) and the same with a consumer
//!   that does only the least the service must (schema checks, one sled write and flush per
//!   chunk); then publish-to-visible latency at half the service's end-to-end rate. The CPU
//!   each process used per event is printed for the service's two phases.
//!
//! - a three-server JetStream cluster, stream R3, two service instances: raw R3 publish vs the
//!   same events published straight to NATS and timed until applied on both instances; then
//!   HTTP posts through one instance while the stream's leader is killed: the longest stall
//!   between acknowledged posts and the posts answered `503`.
//!
//! Run: `cargo bench --bench service` (needs nats-server on PATH or NATS_SERVER_BIN;
//! IMPACT_BENCH_NATS_EVENTS sets N, default 200,000; IMPACT_BENCH_CLUSTER_EVENTS, 50,000).

#[path = "common/mod.rs"]
mod common;

use common::{event_json_over, idle_cpu, process_cpu, quantile, rate, rss_kib, thread_cpu};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HTTP_ACTIONS: usize = 10_000;
const HTTP_EVENTS: usize = 100_000;
const POST_BATCH: usize = 1000;
const CONNECTIONS: usize = 64;
const LOAD_SECONDS: u64 = 5;
const PUBLISH_WINDOW: usize = 1024;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU used so far: the service's threads (by name), the broker's and this process's in all,
/// and what the cores left idle.
struct CpuSnapshot {
    service: f64,
    threads: BTreeMap<String, f64>,
    broker: f64,
    bench: f64,
    idle: f64,
}

impl CpuSnapshot {
    fn take(service: &Proc, broker: &Proc) -> CpuSnapshot {
        CpuSnapshot {
            service: process_cpu(&service.0.id().to_string()),
            threads: thread_cpu(&service.0.id().to_string()),
            broker: process_cpu(&broker.0.id().to_string()),
            bench: process_cpu("self"),
            idle: idle_cpu(),
        }
    }

    /// µs of CPU per event since `before`, by process (the service's threads grouped by name:
    /// sled's I/O pool as one), and the share of the cores left idle over `wall` seconds.
    fn since(&self, before: &CpuSnapshot, events: usize, wall: f64, cores: usize) -> String {
        let per_event = |seconds: f64| seconds * 1e6 / events as f64;
        let mut threads: BTreeMap<String, f64> = BTreeMap::new();
        for (name, cpu) in &self.threads {
            let group = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
            *threads.entry(group.to_owned()).or_default() +=
                cpu - before.threads.get(name).copied().unwrap_or(0.0);
        }
        let threads: Vec<String> = threads
            .iter()
            .filter(|(_, cpu)| per_event(**cpu) >= 0.5)
            .map(|(name, cpu)| format!("{name} {:.1}", per_event(*cpu)))
            .collect();
        format!(
            "CPU per event: service {:.1} µs ({}), nats-server {:.1}, bench {:.1}; cores idle {:.0}%",
            per_event(self.service - before.service),
            threads.join(", "),
            per_event(self.broker - before.broker),
            per_event(self.bench - before.bench),
            100.0 * (self.idle - before.idle) / (wall * cores as f64)
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_service(data_dir: &std::path::Path, nats: Option<&str>) -> (Proc, String) {
    let nats = nats.map_or(String::new(), |url| format!("[nats]\nurl = \"{url}\"\n"));
    start_configured(data_dir, &nats, "warn")
}

/// The service over `data_dir` with `config` (and scheduled reviews off), logging at
/// `log_level`: the process and its base URL.
fn start_configured(data_dir: &std::path::Path, config: &str, log_level: &str) -> (Proc, String) {
    let path = data_dir.with_extension("toml");
    std::fs::write(&path, format!("{config}[review]\nschedule = \"off\"\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_impact"))
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", log_level)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    std::thread::spawn(move || for _ in lines {});
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    (Proc(child), base)
}

/// 64 connections hammer `path_for(i)` for LOAD_SECONDS: (requests/s, p50 ms, p99 ms).
async fn load(base: &str, path_for: Arc<dyn Fn(usize) -> String + Send + Sync>) -> (f64, f64, f64) {
    load_at(base, path_for, None).await
}

/// As `load`, but when `total_rate` is given each connection sends on a fixed schedule
/// (open loop) and a latency counts from when its request was due, not when it was sent, so a
/// stall is not hidden by the requests it delayed (see the loop for the timer's own lateness).
async fn load_at(
    base: &str,
    path_for: Arc<dyn Fn(usize) -> String + Send + Sync>,
    total_rate: Option<f64>,
) -> (f64, f64, f64) {
    let interval = total_rate.map(|rate| Duration::from_secs_f64(CONNECTIONS as f64 / rate));
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let address = base.trim_start_matches("http://").to_owned();
    for c in 0..CONNECTIONS {
        let address = address.clone();
        let path_for = path_for.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&address).await;
            let mut latencies = Vec::new();
            let mut i = c * 7919;
            let mut due = Instant::now()
                + interval.map_or(Duration::ZERO, |every| {
                    every.mul_f64(c as f64 / CONNECTIONS as f64)
                });
            while Instant::now() < deadline {
                let request = format!("GET {} HTTP/1.1\r\nHost: {address}\r\n\r\n", path_for(i));
                let sent = match interval {
                    Some(every) => {
                        // Behind schedule: count from when the request was due. Ahead: sleep,
                        // and count from the wake-up (tokio's timer rounds up to the next
                        // millisecond, a lateness of the load generator, not of the service).
                        let sent = if due > Instant::now() {
                            tokio::time::sleep_until(due.into()).await;
                            Instant::now()
                        } else {
                            due
                        };
                        due += every;
                        sent
                    }
                    None => Instant::now(),
                };
                let status = connection.get(request.as_bytes()).await;
                assert!((200..300).contains(&status), "{status}");
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                i += 1;
            }
            latencies
        }));
    }
    let (latencies, seconds) = gathered(tasks, started).await;
    (
        rate(latencies.len(), seconds),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
    )
}

/// A keep-alive HTTP/1.1 connection for the load loops: writes a ready-made request and reads
/// the response by its `Content-Length`, the least a client can do per request (as `wrk` does),
/// so the load generator takes as little as it can of the cores it shares with the service.
struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(address: &str) -> Connection {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            stream,
            buffer: Vec::with_capacity(16 << 10),
        }
    }

    /// Sends `request` and reads its whole response; returns the status code.
    async fn get(&mut self, request: &[u8]) -> u16 {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(request).await.unwrap();
        self.buffer.clear();
        let (head_len, status, body_len) = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end]).unwrap();
                let status = head[9..12].parse::<u16>().unwrap();
                let body_len = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().unwrap())
                    })
                    .expect("a response with a Content-Length");
                break (end + 4, status, body_len);
            }
            self.read_more().await;
        };
        while self.buffer.len() < head_len + body_len {
            self.read_more().await;
        }
        status
    }

    /// Appends what the socket has to the buffer (straight into its spare capacity).
    async fn read_more(&mut self) {
        use tokio::io::AsyncReadExt;
        self.buffer.reserve(4096);
        let read = self.stream.read_buf(&mut self.buffer).await.unwrap();
        assert!(read > 0, "the service closed the connection");
    }
}

/// Posts one JSON array of events; the service must accept it (`202`, durable on answer).
async fn post_events(client: &reqwest::Client, base: &str, body: &[u8]) {
    let response = client
        .post(format!("{base}/v1/events"))
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 202, "{}", response.text().await.unwrap());
}

async fn http_benchmarks(cores: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (_service, base) = start_service(&dir.path().join("data"), None);
    let client = reqwest::Client::new();
    println!("HTTP, embedded mode: {HTTP_ACTIONS} Actions, {HTTP_EVENTS} events, {CONNECTIONS} connections, {cores} cores");

    // POST in batches of 1,000: registrations first, then the rest from four clients at once.
    let bodies: Vec<Vec<u8>> = (0..HTTP_EVENTS)
        .step_by(POST_BATCH)
        .map(|start| {
            let mut body = b"[".to_vec();
            for n in start..start + POST_BATCH {
                if n > start {
                    body.push(b',');
                }
                body.extend(event_json_over(n, HTTP_ACTIONS));
            }
            body.push(b']');
            body
        })
        .collect();
    let started = Instant::now();
    let registrations = HTTP_ACTIONS / POST_BATCH;
    for body in &bodies[..registrations] {
        post_events(&client, &base, body).await;
    }
    let rest: Arc<Vec<Vec<u8>>> = Arc::new(bodies[registrations..].to_vec());
    let mut posters = Vec::new();
    let poster_count: usize = std::env::var("IMPACT_BENCH_POSTERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4);
    for p in 0..poster_count {
        let (client, base, rest) = (client.clone(), base.clone(), rest.clone());
        posters.push(tokio::spawn(async move {
            for body in rest.iter().skip(p).step_by(poster_count) {
                post_events(&client, &base, body).await;
            }
        }));
    }
    for poster in posters {
        poster.await.unwrap();
    }
    let post_rate = rate(HTTP_EVENTS, started.elapsed().as_secs_f64());
    println!("POST /v1/events, batches of {POST_BATCH}:   {post_rate:>9.0} events/s, durable on answer (target >= 30,000)");

    let (health_rps, health_p50, health_p99) =
        load(&base, Arc::new(|_| "/healthz".to_owned())).await;
    println!("GET /healthz (ceiling):            {health_rps:>9.0} req/s  p50 {health_p50:.2} ms  p99 {health_p99:.2} ms");
    let view_path: Arc<dyn Fn(usize) -> String + Send + Sync> =
        Arc::new(|i| format!("/v1/actions/MIEUX-TH-{:06}", i % HTTP_ACTIONS));
    let (view_rps, view_p50, view_p99) = load(&base, view_path.clone()).await;
    println!(
        "GET /v1/actions/{{id}}:              {view_rps:>9.0} req/s  p50 {view_p50:.2} ms  p99 {view_p99:.2} ms  ({:.0}% of /healthz; target >= 50%, p99 <= 2 ms)",
        100.0 * view_rps / health_rps
    );
    // With 64 connections kept busy, a request waits behind the others on 2 cores (Little's
    // law: 64 / throughput), so the latency target is also measured at half the throughput.
    let pace = view_rps / 2.0;
    let (paced_rps, paced_p50, paced_p99) = load_at(&base, view_path, Some(pace)).await;
    println!(
        "GET /v1/actions/{{id}} at {pace:.0}/s:     {paced_rps:>9.0} req/s  p50 {paced_p50:.2} ms  p99 {paced_p99:.2} ms  (64 connections, open loop; target p99 <= 2 ms)"
    );
    // The same pace on /healthz: the latency floor of this machine, load generator and stack.
    let (paced_rps, paced_p50, paced_p99) =
        load_at(&base, Arc::new(|_| "/healthz".to_owned()), Some(pace)).await;
    println!(
        "GET /healthz at {pace:.0}/s (ceiling):  {paced_rps:>9.0} req/s  p50 {paced_p50:.2} ms  p99 {paced_p99:.2} ms  (64 connections, open loop)"
    );
}

/// The events of the pages' bench: `PAGES_EVENTS` over `HTTP_ACTIONS` Actions (a registration
/// and four practice stages over three outcomes each), then `BIG_ACTION`'s 45 more (50 in
/// all), with a contribution, evidence and notes as field offices write them.
const PAGES_EVENTS: usize = 5 * HTTP_ACTIONS;
const BIG_ACTION: &str = "MIEUX-TH-000000";

fn big_action_event(n: usize) -> Vec<u8> {
    let stages = [
        "practice.awareness",
        "practice.applied",
        "practice.routine",
        "practice.diffused",
    ];
    let id = uuid::Uuid::from_u128(0x2000_0000_0000_0000_0000_0000_0000 + n as u128);
    format!(
        r#"{{"event_id":"{id}","type":"{}","action_id":"{BIG_ACTION}","country":"TH","outcome_id":"o-{}","occurred_on":"2020-{:02}-{:02}","reported_by":"fo-bangkok","evidence":[{{"title":"Follow-up meeting minutes","url":"https://example.org/minutes-{n}.pdf"}}],"data":{{"title":"Officials apply social-marketing lessons in outreach number {}","contribution":{{"level":"contributory","confidence":"medium","note":"the ministry had started on its own"}},"note":"reported by the field office after the follow-up meeting with the ministry"}}}}"#,
        stages[n % stages.len()],
        n % 9,
        1 + n % 12,
        1 + n % 28,
        n % 9,
    )
    .into_bytes()
}

/// One event a form posts: the form's fields (auth off: the CSRF token of the page it came
/// from, and who reports) and the same event as the API takes it.
fn form_event(n: usize, csrf: &str) -> (String, Vec<u8>) {
    let id = uuid::Uuid::from_u128(0x3000_0000_0000_0000_0000_0000_0000 + n as u128);
    let action = format!("MIEUX-TH-{:06}", n % HTTP_ACTIONS);
    let outcome = format!("o-form-{}", n % 3);
    let title = "Officials apply social-marketing lessons";
    let form = format!(
        "csrf={csrf}&event_id={id}&form=report&type=practice.awareness&action_id={action}&country=TH&outcome_id={outcome}&occurred_on=2020-01-01&reported_by=fo-bangkok&data.title={}",
        title.replace(' ', "+")
    );
    let json = format!(
        r#"{{"event_id":"{id}","type":"practice.awareness","action_id":"{action}","country":"TH","outcome_id":"{outcome}","occurred_on":"2020-01-01","reported_by":"fo-bangkok","data":{{"title":"{title}"}}}}"#
    );
    (form, json.into_bytes())
}

/// The `n`-th request of a post load.
type Posts = Arc<dyn Fn(&reqwest::Client, &str, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// `CONNECTIONS` clients post one event at a time for `LOAD_SECONDS`, each event new (`n` is
/// spread so no two clients share one): events/s and p50 ms.
async fn post_load(base: &str, post: Posts, expect: u16, first: usize) -> (f64, f64) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (client, base, post) = (client.clone(), base.to_owned(), post.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = first + c * 1_000_000;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response = post(&client, &base, n).send().await.unwrap();
                let status = response.status().as_u16();
                let body = response.text().await.unwrap();
                assert_eq!(status, expect, "{body}");
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                n += 1;
            }
            latencies
        }));
    }
    let (latencies, seconds) = gathered(tasks, started).await;
    (rate(latencies.len(), seconds), quantile(&latencies, 0.5))
}

/// The load tasks' latencies, sorted, and the seconds since `started` once all are done.
async fn gathered(
    tasks: Vec<tokio::task::JoinHandle<Vec<f64>>>,
    started: Instant,
) -> (Vec<f64>, f64) {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (latencies, seconds)
}

/// The path the load's `i`-th request asks for.
type Paths = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// The pages beside their JSON twins, measured the same way in the same run (issue 14): an
/// Action's page and its view; `/` and `/v1/actions` with the same filters; a comparison and
/// one view read; and the size of the page of an Action with 50 events.
async fn pages_benchmarks(cores: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (_service, base) = start_service(&dir.path().join("data"), None);
    let client = reqwest::Client::new();
    println!("Pages, embedded mode, no sign-in: {HTTP_ACTIONS} Actions, {PAGES_EVENTS} events + 45 on {BIG_ACTION}, {CONNECTIONS} connections, {cores} cores");
    let events: Vec<Vec<u8>> = (0..PAGES_EVENTS)
        .map(|n| event_json_over(n, HTTP_ACTIONS))
        .chain((0..45).map(big_action_event))
        .collect();
    for chunk in events.chunks(POST_BATCH) {
        let body = [b"[".to_vec(), chunk.join(&b","[..]), b"]".to_vec()].concat();
        post_events(&client, &base, &body).await;
    }
    // Applied before anything is measured: the last event is in its Action's view (the log is
    // applied in order).
    let big_events = loop {
        let view: serde_json::Value = client
            .get(format!("{base}/v1/actions/{BIG_ACTION}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match view["event_count"].as_u64() {
            Some(50) => break 50,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let big = client
        .get(format!("{base}/actions/{BIG_ACTION}"))
        .send()
        .await
        .unwrap();
    assert!(big.status().is_success(), "{}", big.status());
    let bytes = big.bytes().await.unwrap().len();
    println!(
        "/actions/{BIG_ACTION} ({big_events} events): {:.1} KiB of HTML and SVG (target <= 100 KiB)",
        bytes as f64 / 1024.0
    );

    let pairs: [(&str, Paths, &str, Paths, f64); 4] = [
        (
            "/actions/{id}",
            Arc::new(|i| format!("/actions/MIEUX-TH-{:06}", i % HTTP_ACTIONS)),
            "GET /v1/actions/{id}",
            Arc::new(|i| format!("/v1/actions/MIEUX-TH-{:06}", i % HTTP_ACTIONS)),
            2.0,
        ),
        (
            "/ (first page)",
            Arc::new(|_| "/".to_owned()),
            "GET /v1/actions",
            Arc::new(|_| "/v1/actions".to_owned()),
            2.0,
        ),
        (
            "/?state=achieved (first page)",
            Arc::new(|_| "/?state=achieved&as_of=2018-06-30".to_owned()),
            "GET /v1/actions?state=achieved",
            Arc::new(|_| "/v1/actions?state=achieved&as_of=2018-06-30".to_owned()),
            2.0,
        ),
        (
            "GET /v1/actions/{id}/compare",
            Arc::new(|i| {
                format!(
                    "/v1/actions/MIEUX-TH-{:06}/compare?a_as_of=2017-06-30",
                    i % HTTP_ACTIONS
                )
            }),
            "GET /v1/actions/{id}",
            Arc::new(|i| format!("/v1/actions/MIEUX-TH-{:06}", i % HTTP_ACTIONS)),
            2.5,
        ),
    ];
    for (name, path, twin_name, twin_path, bound) in pairs {
        let (twin_rps, twin_p50, _) = load(&base, twin_path).await;
        let (rps, p50, _) = load(&base, path).await;
        println!(
            "{name}: {rps:.0} req/s p50 {p50:.2} ms; {twin_name}: {twin_rps:.0} req/s p50 {twin_p50:.2} ms; time {:.2}x the twin's (target <= {bound}x)",
            twin_rps / rps
        );
    }

    // A form post beside the same event through the API, one event a request, both waiting
    // until it is applied (the form answers 303 to the Action's page once it is).
    let page = client
        .get(format!(
            "{base}/submit?form=report&action_id={BIG_ACTION}&track=practice"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("the form's csrf") + marker.len();
    let csrf: Arc<str> = page[at..at + page[at..].find('"').unwrap()].into();
    let api: Posts = Arc::new(|client, base, n| {
        client
            .post(format!("{base}/v1/events?wait=true"))
            .header("Content-Type", "application/json")
            .body(form_event(n, "").1)
    });
    let form: Posts = Arc::new(move |client, base, n| {
        client
            .post(format!("{base}/submit"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_event(n, &csrf).0)
    });
    let (api_rate, api_p50) = post_load(&base, api, 202, 0).await;
    let (form_rate, form_p50) = post_load(&base, form, 303, 500_000).await;
    println!(
        "POST /submit (one event): {form_rate:.0} events/s p50 {form_p50:.2} ms; POST /v1/events?wait=true (one event): {api_rate:.0} events/s p50 {api_p50:.2} ms; time {:.2}x the API's (target <= 2x)",
        api_rate / form_rate
    );
}

/// Outcomes per Action in the exports' bench: 10,000 Actions, 50,000 outcomes.
const EXPORT_OUTCOMES: usize = 5;

/// The n-th event of the exports' bench: the registrations, then one stage of each outcome.
fn export_event(n: usize) -> Vec<u8> {
    if n < HTTP_ACTIONS {
        return event_json_over(n, HTTP_ACTIONS);
    }
    let action = n % HTTP_ACTIONS;
    let outcome = n / HTTP_ACTIONS - 1;
    let stages = [
        "practice.awareness",
        "practice.applied",
        "network.created",
        "mechanism.proposed",
        "legislation.pending",
    ];
    let id = uuid::Uuid::from_u128(0x4000_0000_0000_0000_0000_0000_0000 + n as u128);
    format!(
        r#"{{"event_id":"{id}","type":"{}","action_id":"MIEUX-TH-{action:06}","country":"TH","outcome_id":"o-{outcome}","occurred_on":"2019-{:02}-{:02}","reported_by":"fo-bangkok","data":{{"title":"Outcome {outcome}, with a comma, of Action {action}","expected":{{"stage":"{}","by":"2027-06-30"}}}},"evidence":[{{"title":"Minutes","url":"https://example.org/{action}/{outcome}.pdf"}}]}}"#,
        stages[outcome],
        1 + n % 12,
        1 + n % 28,
        ["applied", "routine", "active", "established", "adopted"][outcome],
    )
    .into_bytes()
}

/// The CSV export beside `GET /v1/actions` of the same scope, one request at a time (each a
/// whole answer of every Action in scope), and the service's memory while the CSV streams.
async fn exports_benchmarks(cores: usize) {
    let dir = tempfile::tempdir().unwrap();
    let iati = "[iati]\nreporting_org_ref = \"XM-BENCH\"\nreporting_org_name = \"Bench\"\n";
    let (service, base) = start_configured(&dir.path().join("data"), iati, "warn");
    let client = reqwest::Client::new();
    let events = HTTP_ACTIONS * (1 + EXPORT_OUTCOMES);
    println!(
        "Exports, embedded mode: {HTTP_ACTIONS} Actions, {} outcomes, {cores} cores",
        HTTP_ACTIONS * EXPORT_OUTCOMES
    );
    let all: Vec<Vec<u8>> = (0..events).map(export_event).collect();
    for chunk in all.chunks(POST_BATCH) {
        let body = [b"[".to_vec(), chunk.join(&b","[..]), b"]".to_vec()].concat();
        post_events(&client, &base, &body).await;
    }
    let last = format!("{base}/v1/actions/MIEUX-TH-{:06}", HTTP_ACTIONS - 1);
    loop {
        let view: serde_json::Value = client
            .get(&last)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["summary"]["outcomes"] == EXPORT_OUTCOMES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = service.0.id().to_string();

    // Memory: the service's resident size sampled every 5 ms while one CSV export streams.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(&pid);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (pid, sampling) = (pid.clone(), sampling.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(&pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let (csv_bytes, _) = timed_download(&client, &format!("{base}/v1/exports/outcomes.csv")).await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    println!(
        "GET /v1/exports/outcomes.csv: {:.1} MiB; the service's RSS {:.1} MiB before, peak {:.1} MiB during: grew {:.1} MiB (target <= 32 MiB)",
        csv_bytes as f64 / 1048576.0,
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0
    );

    // Time: five rounds, the three interleaved; the medians.
    let (iati_bytes, _) = timed_download(&client, &format!("{base}/v1/exports/iati.xml")).await;
    println!(
        "GET /v1/exports/iati.xml: {:.1} MiB",
        iati_bytes as f64 / 1048576.0
    );

    // Time: five rounds, the four interleaved; the medians.
    let (mut list, mut csv, mut xlsx, mut iati) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        for (path, times) in [
            ("/v1/actions", &mut list),
            ("/v1/exports/outcomes.csv", &mut csv),
            ("/v1/exports/outcomes.xlsx", &mut xlsx),
            ("/v1/exports/iati.xml", &mut iati),
        ] {
            times.push(timed_download(&client, &format!("{base}{path}")).await.1);
        }
    }
    for times in [&mut list, &mut csv, &mut xlsx, &mut iati] {
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    println!("GET /v1/actions: median {:.0} ms", list[2] * 1000.0);
    for (path, times, bound) in [
        ("outcomes.csv", &csv, 1.5),
        ("outcomes.xlsx", &xlsx, 4.0),
        ("iati.xml", &iati, 4.0),
    ] {
        println!(
            "GET /v1/exports/{path}: median {:.0} ms; time {:.2}x the list's (target <= {bound}x)",
            times[2] * 1000.0,
            times[2] / list[2]
        );
    }
}

/// GETs `url` and reads the whole body as it comes, keeping none of it: bytes and seconds.
async fn timed_download(client: &reqwest::Client, url: &str) -> (usize, f64) {
    use futures::StreamExt;
    let started = Instant::now();
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut body = response.bytes_stream();
    let mut bytes = 0;
    while let Some(chunk) = body.next().await {
        bytes += chunk.unwrap().len();
    }
    (bytes, started.elapsed().as_secs_f64())
}

struct Nats {
    process: Proc,
    url: String,
    _store: tempfile::TempDir,
}

fn start_nats() -> Nats {
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server on PATH or NATS_SERVER_BIN");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Nats {
        process: Proc(child),
        url: format!("nats://127.0.0.1:{port}"),
        _store: store,
    }
}

/// Publishes `(subject, event_id, payload)` with PubAcks awaited in a window, at `pace` events
/// per second if given; returns when each was sent.
async fn publish_all(
    js: &async_nats::jetstream::Context,
    messages: &[(String, String, Vec<u8>)],
    pace: Option<f64>,
) -> Vec<Instant> {
    let started = Instant::now();
    let mut sent_at = Vec::with_capacity(messages.len());
    let mut window = std::collections::VecDeque::new();
    for (i, (subject, id, payload)) in messages.iter().enumerate() {
        if let Some(per_second) = pace {
            let due = started + Duration::from_secs_f64(i as f64 / per_second);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        sent_at.push(Instant::now());
        window.push_back(
            js.publish_with_headers(subject.clone(), headers, payload.clone().into())
                .await
                .unwrap(),
        );
        if window.len() >= PUBLISH_WINDOW {
            window.pop_front().unwrap().await.unwrap();
        }
    }
    for ack in window {
        ack.await.unwrap();
    }
    sent_at
}

/// Creates stream `name` over `<prefix>.>` and returns the events addressed to it, as
/// `(subject, event_id, payload)`.
async fn fresh_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    prefix: &str,
    payloads: &[(String, String, Vec<u8>)],
) -> Vec<(String, String, Vec<u8>)> {
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    payloads
        .iter()
        .map(|(id, tail, json)| (format!("{prefix}.events.{tail}"), id.clone(), json.clone()))
        .collect()
}

/// Publishes `payloads` to a fresh stream `name` while `consume` drains it through an ordered
/// pull consumer (as the service reads the stream); returns the rate until both are done.
/// The stream is deleted after: the broker then holds the service's stream only, as deployed
/// (600,000 more messages kept in it lengthened the latency phase's tail).
async fn publish_while_consuming<F, Done>(
    js: &async_nats::jetstream::Context,
    name: &str,
    payloads: &[(String, String, Vec<u8>)],
    consume: F,
) -> f64
where
    F: FnOnce(async_nats::jetstream::consumer::pull::Ordered) -> Done,
    Done: std::future::Future<Output = ()> + Send + 'static,
{
    let messages = fresh_stream(js, name, &name.to_lowercase(), payloads).await;
    let consumer = js
        .get_stream(name)
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let consumer = tokio::spawn(consume(consumer.messages().await.unwrap()));
    let started = Instant::now();
    publish_all(js, &messages, None).await;
    consumer.await.unwrap();
    let rate = rate(payloads.len(), started.elapsed().as_secs_f64());
    js.delete_stream(name).await.unwrap();
    rate
}

/// An event as published: `(country.action_id subject tail, event_id, payload)`.
fn message(value: serde_json::Value) -> (String, String, Vec<u8>) {
    let tail = format!(
        "{}.{}",
        value["country"].as_str().unwrap(),
        value["action_id"].as_str().unwrap()
    );
    (
        value["event_id"].as_str().unwrap().to_owned(),
        tail,
        value.to_string().into_bytes(),
    )
}

async fn log_position(client: &reqwest::Client, base: &str) -> u64 {
    positions(client, base).await.0
}

/// `/readyz`'s durable and visible log positions.
async fn positions(client: &reqwest::Client, base: &str) -> (u64, u64) {
    let body: serde_json::Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["log_position"].as_u64().unwrap(),
        body["visible_position"].as_u64().unwrap(),
    )
}

async fn nats_benchmarks(cores: usize) {
    let events: usize = std::env::var("IMPACT_BENCH_NATS_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let actions = events / 10;
    println!("\nNATS JetStream: {events} events over {actions} Actions, PubAck window {PUBLISH_WINDOW}, {cores} cores");
    // The subject carries one Action per event: publish to the event's own subject.
    let payloads: Vec<(String, String, Vec<u8>)> = (0..events)
        .map(|n| message(serde_json::from_slice(&event_json_over(n, actions)).unwrap()))
        .collect();

    // (a) The ceiling: raw publish to a fresh stream.
    let nats = start_nats();
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let raw = fresh_stream(&js, "RAW", "raw", &payloads).await;
    let started = Instant::now();
    publish_all(&js, &raw, None).await;
    let raw_rate = rate(events, started.elapsed().as_secs_f64());
    js.delete_stream("RAW").await.unwrap(); // As `publish_while_consuming` does.
    println!("raw JetStream publish (ceiling):   {raw_rate:>9.0} events/s");

    // (a2) The broker's own end to end: the same events published while a consumer that only
    // counts them (an ordered pull consumer, as the service uses) drains a fresh stream. What
    // the broker does for any consumer, with no service work at all.
    let counted_rate =
        publish_while_consuming(&js, "COUNTED", &payloads, |mut messages| async move {
            use futures::StreamExt;
            let mut seen = 0;
            while seen < events {
                messages.next().await.unwrap().unwrap();
                seen += 1;
            }
        })
        .await;
    println!(
        "publish + a consumer that only counts: {counted_rate:>9.0} events/s ({:.0}% of raw publish: the broker's own end to end)",
        100.0 * counted_rate / raw_rate
    );

    // (a3) The least the service must do, as an upper bound on what it can reach: the same
    // events published while a consumer schema-checks each message and writes each chunk's
    // canonical events and its checkpoint in one batch to a store opened as the service opens
    // it, flushed (sled's flush; no fdatasync, no duplicate check, rules, views or rejection
    // store).
    let store_dir = tempfile::tempdir().unwrap();
    let store =
        impact::store::Store::open(store_dir.path(), impact::store::CACHE_BYTES_DEFAULT).unwrap();
    let schemas = Arc::new(impact::domain::validate::Schemas::load());
    let logged_rate = publish_while_consuming(&js, "LOGGED", &payloads, |messages| async move {
        use futures::StreamExt;
        let mut chunks = messages.ready_chunks(2048);
        let mut seen = 0;
        while seen < events {
            let chunk: Vec<(u64, bytes::Bytes)> = chunks
                .next()
                .await
                .unwrap()
                .into_iter()
                .map(|message| {
                    let message = message.unwrap();
                    let seq = message.info().unwrap().stream_sequence;
                    (seq, message.payload.clone())
                })
                .collect();
            seen += chunk.len();
            let (store, schemas) = (store.clone(), schemas.clone());
            tokio::task::spawn_blocking(move || {
                let mut segment = Vec::new();
                for (_, raw) in &chunk {
                    let parsed = schemas
                        .parse_bytes(raw, impact::domain::validate::Origin::Client)
                        .unwrap();
                    segment.extend_from_slice(&(parsed.canonical.len() as u32).to_be_bytes());
                    segment.extend_from_slice(&parsed.canonical);
                }
                let last = chunk.last().unwrap().0;
                let mut batch = sled::Batch::default();
                batch.insert(&chunk[0].0.to_be_bytes(), segment);
                batch.insert("checkpoint", &last.to_be_bytes());
                store.raw().apply_batch(batch).unwrap();
                store.raw().flush().unwrap();
            })
            .await
            .unwrap();
        }
    })
    .await;
    println!(
        "publish + a consumer that checks and logs only: {logged_rate:>9.0} events/s ({:.0}% of raw publish: the bound for the service)",
        100.0 * logged_rate / raw_rate
    );

    // (b) End to end: the same events, to the service's subjects, until applied and durable.
    let dir = tempfile::tempdir().unwrap();
    let (service, base) = start_service(&dir.path().join("data"), Some(&nats.url));
    let client = reqwest::Client::new();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let to_service: Vec<(String, String, Vec<u8>)> = payloads
        .iter()
        .map(|(id, tail, json)| (format!("impact.events.{tail}"), id.clone(), json.clone()))
        .collect();
    let before = CpuSnapshot::take(&service, &nats.process);
    let started = Instant::now();
    publish_all(&js, &to_service, None).await;
    while log_position(&client, &base).await < events as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let e2e_seconds = started.elapsed().as_secs_f64();
    let e2e_rate = rate(events, e2e_seconds);
    println!(
        "end to end, applied and durable:   {e2e_rate:>9.0} events/s ({:.0}% of raw publish; target >= 50%, stretch 70%; {:.0}% of the broker's own, {:.0}% of the check-and-log bound)",
        100.0 * e2e_rate / raw_rate,
        100.0 * e2e_rate / counted_rate,
        100.0 * e2e_rate / logged_rate
    );
    println!(
        "  {}",
        CpuSnapshot::take(&service, &nats.process).since(&before, events, e2e_seconds, cores)
    );

    // (c) Latency at half the end-to-end rate: new events for the same Actions.
    let pace = e2e_rate / 2.0;
    let extra = ((pace * 10.0) as usize).clamp(1000, events);
    let more: Vec<(String, String, Vec<u8>)> = (0..extra)
        .map(|n| {
            let mut value: serde_json::Value =
                serde_json::from_slice(&event_json_over(actions + n, actions)).unwrap();
            value["event_id"] = serde_json::json!(uuid::Uuid::from_u128(
                0x2000_0000_0000_0000_0000_0000_0000 + n as u128
            )
            .to_string());
            message(value)
        })
        .collect();
    let base_position = log_position(&client, &base).await;
    let watcher = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(u64, u64, Instant)> = Vec::new();
            loop {
                let (durable, visible) = positions(&client, &base).await;
                seen.push((durable, visible, Instant::now()));
                if durable >= base_position + extra as u64 {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let more: Vec<(String, String, Vec<u8>)> = more
        .into_iter()
        .map(|(id, tail, json)| (format!("impact.events.{tail}"), id, json))
        .collect();
    let before = CpuSnapshot::take(&service, &nats.process);
    let started = Instant::now();
    let sent_at = publish_all(&js, &more, Some(pace)).await;
    let seen = watcher.await.unwrap();
    let cpu = CpuSnapshot::take(&service, &nats.process).since(
        &before,
        extra,
        started.elapsed().as_secs_f64(),
        cores,
    );
    // Visible: readers see the event (written to sled, served from memory or its key);
    // durable: synced, as every answer waits for.
    let latencies = |durable: bool| {
        let mut latencies: Vec<f64> = sent_at
            .iter()
            .enumerate()
            .map(|(i, sent)| {
                let needed = base_position + i as u64 + 1;
                let (_, _, at) = seen
                    .iter()
                    .find(|(d, v, _)| if durable { *d } else { *v } >= needed)
                    .unwrap();
                at.saturating_duration_since(*sent).as_secs_f64() * 1000.0
            })
            .collect();
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        latencies
    };
    let (visible, durable) = (latencies(false), latencies(true));
    println!(
        "publish-to-visible at {pace:.0}/s:   p50 {:.1} ms  p99 {:.1} ms over {extra} events (target p99 <= 50 ms)",
        quantile(&visible, 0.5),
        quantile(&visible, 0.99)
    );
    println!(
        "publish-to-durable at {pace:.0}/s:   p50 {:.1} ms  p99 {:.1} ms (synced in sled)",
        quantile(&durable, 0.5),
        quantile(&durable, 0.99)
    );
    println!("  {cpu} (the bench here: publisher and /readyz watcher)");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // IMPACT_BENCH_ONLY=http, =pages, =exports, =nats or =cluster runs one part.
    let only = std::env::var("IMPACT_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "http" {
        http_benchmarks(cores).await;
    }
    if only.is_empty() || only == "pages" {
        pages_benchmarks(cores).await;
    }
    if only.is_empty() || only == "exports" {
        exports_benchmarks(cores).await;
    }
    if only.is_empty() || only == "nats" {
        nats_benchmarks(cores).await;
    }
    if only.is_empty() || only == "cluster" {
        cluster_benchmarks(cores).await;
    }
}

/// Three nats-servers in a JetStream cluster on loopback (no users: the bench measures speed).
struct ClusterNats {
    servers: Vec<Option<Proc>>,
    ports: Vec<u16>,
    routes: Vec<u16>,
    stores: Vec<tempfile::TempDir>,
}

impl ClusterNats {
    fn start() -> ClusterNats {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let stores = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut cluster = ClusterNats {
            servers: vec![None, None, None],
            ports,
            routes,
            stores,
        };
        for n in 0..3 {
            cluster.start_server(n);
        }
        cluster
    }

    fn start_server(&mut self, n: usize) {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect();
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.ports[n].to_string()])
            .args(["-n", &format!("n{}", n + 1), "--cluster_name", "impact"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", self.routes[n])])
            .args(["--routes", &routes.join(",")])
            .arg("-sd")
            .arg(self.stores[n].path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH or NATS_SERVER_BIN");
        while std::net::TcpStream::connect(("127.0.0.1", self.ports[n])).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.servers[n] = Some(Proc(child));
    }

    fn kill(&mut self, n: usize) {
        self.servers[n] = None; // Proc's drop kills -9 and waits.
    }

    fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect()
    }

    async fn jetstream(&self) -> async_nats::jetstream::Context {
        let addrs: Vec<async_nats::ServerAddr> =
            self.urls().iter().map(|url| url.parse().unwrap()).collect();
        async_nats::jetstream::new(async_nats::connect(addrs).await.unwrap())
    }
}

fn start_replica(data_dir: &std::path::Path, urls: &[String]) -> (Proc, String) {
    let urls: Vec<String> = urls.iter().map(|url| format!("\"{url}\"")).collect();
    let nats = format!(
        "[nats]\nurls = [{}]\nreplicas = 3\npublish_timeout_ms = 10000\n",
        urls.join(", ")
    );
    start_configured(data_dir, &nats, "error")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    loop {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cluster_benchmarks(cores: usize) {
    let events: usize = std::env::var("IMPACT_BENCH_CLUSTER_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000);
    let actions = events / 10;
    println!("\nNATS cluster: three servers, stream R3, two service instances; {events} events over {actions} Actions, PubAck window {PUBLISH_WINDOW}, {cores} cores");
    let payloads: Vec<(String, String, Vec<u8>)> = (0..events)
        .map(|n| message(serde_json::from_slice(&event_json_over(n, actions)).unwrap()))
        .collect();
    let mut cluster = ClusterNats::start();
    let js = cluster.jetstream().await;
    // The meta leader is elected a moment after the servers start.
    loop {
        let created = js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "RAW".into(),
                subjects: vec!["raw.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await;
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let raw: Vec<(String, String, Vec<u8>)> = payloads
        .iter()
        .map(|(id, tail, json)| (format!("raw.events.{tail}"), id.clone(), json.clone()))
        .collect();
    let started = Instant::now();
    publish_all(&js, &raw, None).await;
    let raw_rate = rate(events, started.elapsed().as_secs_f64());
    js.delete_stream("RAW").await.unwrap();
    println!("raw R3 publish (ceiling):          {raw_rate:>9.0} events/s");

    // End to end: published straight to NATS, timed until applied on both instances.
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let urls = cluster.urls();
    let (_a, base_a) = start_replica(&dirs[0].path().join("data"), &urls);
    let (_b, base_b) = start_replica(&dirs[1].path().join("data"), &urls);
    let client = reqwest::Client::new();
    wait_ready(&client, &base_a).await;
    wait_ready(&client, &base_b).await;
    let messages: Vec<(String, String, Vec<u8>)> = payloads
        .iter()
        .map(|(id, tail, json)| (format!("impact.events.{tail}"), id.clone(), json.clone()))
        .collect();
    let started = Instant::now();
    publish_all(&js, &messages, None).await;
    for base in [&base_a, &base_b] {
        while log_position(&client, base).await < events as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let applied_rate = rate(events, started.elapsed().as_secs_f64());
    println!(
        "published, applied on both instances: {applied_rate:>9.0} events/s ({:.0}% of raw R3 publish)",
        100.0 * applied_rate / raw_rate
    );

    // Posts through one instance, one event each from 8 clients, while the stream's leader is
    // killed -9 and restarted 10 s later: the longest time without an acknowledged post.
    let mut stream = js.get_stream("IMPACT").await.unwrap();
    let info = stream.info().await.unwrap();
    let leader = info.cluster.clone().unwrap().leader.unwrap();
    let leader: usize = leader.trim_start_matches('n').parse::<usize>().unwrap() - 1;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut posters = Vec::new();
    for client_no in 0..8 {
        let (client, base, stop, acked, refused) = (
            client.clone(),
            base_a.clone(),
            stop.clone(),
            acked.clone(),
            refused.clone(),
        );
        posters.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = event_json_over(events + client_no * 1_000_000 + n, actions);
                let response = client
                    .post(format!("{base}/v1/events"))
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match response.map(|r| r.status().as_u16()) {
                    Ok(202) => acked.lock().unwrap().push(Instant::now()),
                    _ => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = Instant::now();
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_secs(10)).await;
    cluster.start_server(leader);
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for poster in posters {
        poster.await.unwrap();
    }
    let mut times = acked.lock().unwrap().clone();
    times.sort();
    let longest = times
        .windows(2)
        .filter(|pair| pair[1] >= killed_at - Duration::from_secs(1))
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default();
    println!(
        "leader killed under 8 posting clients: longest stall {:.2} s (target <= 10 s), {} posts answered, {} not acknowledged (503 or error)",
        longest.as_secs_f64(),
        times.len(),
        refused.load(std::sync::atomic::Ordering::Relaxed)
    );
}
