//! Connections and streams are bounded (CONTRACT.md §11): a flood of idle sockets or of
//! unread NDJSON streams, against the real binary, cannot take the service's descriptors,
//! threads or memory, and what was admitted goes on being served.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The service's resident memory, from /proc.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib / 1024
}

fn address(service: &Service) -> String {
    service.base.trim_start_matches("http://").to_owned()
}

/// The first bytes a socket receives (up to 4 KiB), or what ended the wait.
fn first_answer(socket: &mut TcpStream, within: Duration) -> Result<String, std::io::Error> {
    socket.set_read_timeout(Some(within))?;
    let mut buffer = [0u8; 4096];
    let n = socket.read(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

/// Posts registrations of fresh Actions, `count` in all, and returns their event_ids.
async fn post_registrations(http: &reqwest::Client, service: &Service, from: usize, count: usize) {
    for chunk in (from..from + count).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|n| registered(&format!("MIEUX-TH-{n:06}"), "TH"))
            .collect();
        let (status, answer) =
            post_json(http, &service.url("/v1/events"), &Value::Array(batch)).await;
        assert_eq!(status, 202, "{answer}");
    }
}

/// The process may open 512 files: the connection cap follows (512 less what the store and
/// broker keep), and 1,500 idle sockets, three times what the process could hold, neither
/// take a descriptor the store needs nor stop the connections admitted before them. Over the
/// cap, a socket is answered `503` at once; an admitted socket that sends nothing is closed
/// after the header timeout; once the idle ones are gone, new connections write again.
#[tokio::test]
async fn idle_sockets_beyond_the_descriptors_take_nothing_from_admitted_connections() {
    let service = Service::start_under(&["prlimit", "--nofile=512:512", "--"], &[]);
    let http = client();
    // This client's connection is admitted before the flood, and kept busy during it.
    post_registrations(&http, &service, 0, 10).await;

    let address = address(&service);
    let mut idle: Vec<TcpStream> = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..1500 {
        match TcpStream::connect(&address) {
            Ok(socket) => idle.push(socket),
            Err(error) => refused.push(error),
        }
    }
    assert!(refused.is_empty(), "connects failed: {:?}", &refused[..1]);
    // The last sockets are over the cap: each is answered 503 at once, naming the key.
    let mut last = idle.pop().unwrap();
    let answer = first_answer(&mut last, Duration::from_secs(5)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("server.max_connections"), "{answer}");

    // The admitted connection reads and writes while the idle sockets are held.
    for round in 0..5 {
        post_registrations(&http, &service, 100 + round * 10, 10).await;
        let (status, list) = get_json(&http, &service.url("/v1/actions")).await;
        assert_eq!(status, 200);
        assert_eq!(list["actions"].as_array().unwrap().len(), 20 + round * 10);
    }
    let (status, ready) = get_json(&http, &service.url("/readyz")).await;
    assert_eq!(status, 200, "{ready}");

    // An admitted socket that never sends a request is closed after the header timeout.
    let started = Instant::now();
    let closed = first_answer(&mut idle[0], Duration::from_secs(20));
    assert!(
        matches!(&closed, Ok(text) if text.is_empty() || text.starts_with("HTTP/1.1 408")),
        "{closed:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    // The flood gone, a new client connects and writes, without a restart.
    drop(idle);
    let pid = service.pid();
    let fresh = client();
    let action = "MIEUX-TH-999999";
    let (status, answer) = post_json(
        &fresh,
        &service.url("/v1/events?wait=true"),
        &registered(action, "TH"),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let (status, _) = get_json(&fresh, &service.url(&format!("/v1/actions/{action}"))).await;
    assert_eq!(status, 200);
    assert_eq!(service.pid(), pid);
}

/// 1,000 clients ask for the whole log as NDJSON and never read it. A stream holds no thread
/// and one chunk at a time: the service's memory stays bounded, streams over
/// `server.max_streams` are refused with `503`, and the list and POST answer meanwhile. Once
/// the readers are gone, the whole log streams again.
#[tokio::test]
async fn a_thousand_unread_ndjson_streams_hold_bounded_memory_and_nothing_else() {
    let service = Service::start(&[]);
    let http = client();
    post_registrations(&http, &service, 0, 20_000).await;
    let before = rss_mib(service.pid());

    let address = address(&service);
    let request =
        "GET /v1/events?after=0 HTTP/1.1\r\nhost: impact\r\naccept: application/x-ndjson\r\n\r\n";
    let mut readers = Vec::new();
    for _ in 0..1000 {
        let mut socket = TcpStream::connect(&address).unwrap();
        socket.write_all(request.as_bytes()).unwrap();
        readers.push(socket);
    }
    // Let the admitted streams fill their sockets.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_mib(service.pid());
    assert!(
        during < before + 256,
        "RSS went from {before} MiB to {during} MiB with 1,000 unread streams"
    );

    let started = Instant::now();
    let (status, list) = get_json(&http, &service.url("/v1/actions?country=TH")).await;
    assert_eq!(status, 200);
    assert_eq!(list["actions"].as_array().unwrap().len(), 20_000);
    post_registrations(&http, &service, 20_000, 10).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "list and POST took {:?}",
        started.elapsed()
    );

    // The last reader came after the cap: it was refused, naming the key.
    let mut last = readers.pop().unwrap();
    let answer = first_answer(&mut last, Duration::from_secs(5)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("server.max_streams"), "{answer}");

    drop(readers);
    let events = eventually(10, async || {
        let response = http
            .get(service.url("/v1/events?after=0"))
            .header("Accept", "application/x-ndjson")
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())?;
        Some(response.text().await.ok()?.lines().count())
    })
    .await;
    assert_eq!(events, 20_010);
}
