//! One error shape and strict inputs (CONTRACT.md §11), against the real binary: every error
//! the framework or hyper answers (405, 413, 431, a path that is not UTF-8, a request hyper
//! cannot read) carries the §4 error body; a repeated query parameter, a signed number, a year
//! 0000 or before, a language that is not ISO 639-1 and control characters in text are refused
//! with the contract's codes; the rejection store keeps at most 64 KiB of a payload and says so.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `request` as raw bytes and reads the answer to its end (the server closes).
fn raw_answer(service: &Service, request: &[u8]) -> (u16, String, Value) {
    let address = service
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut socket = TcpStream::connect(address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {head}\n{body:?}"));
    (status, head.to_ascii_lowercase(), body)
}

fn assert_error_body(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(body["error"]["details"].is_array(), "{body}");
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let media = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(media.starts_with("application/json"), "{status}: {media}");
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn every_error_the_framework_answers_has_the_error_body() {
    let service = Service::start(&[]);
    let http = client();

    // 405, with the methods the path takes.
    let response = http
        .delete(service.url("/v1/actions"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    assert_error_body(&response.json().await.unwrap(), "method_not_allowed");
    let (status, body) = answer(
        http.put(service.url("/v1/events"))
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 405);
    assert_error_body(&body, "method_not_allowed");

    // Found by schemathesis: a POST (or TRACE) to a path that takes none was a 415 (the JSON
    // rule ran first); it is the router's 405.
    for method in ["POST", "TRACE"] {
        let response = http
            .request(method.parse().unwrap(), service.url("/v1/actions"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_error_body(&response.json().await.unwrap(), "method_not_allowed");
    }
    // A POST where one is taken still needs JSON.
    let response = http
        .post(service.url("/v1/events"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    // 413: a body over the limit.
    let big = format!("[{}]", " ".repeat(impact::api::BODY_BYTES_MAX + 10));
    let (status, body) = answer(
        http.post(service.url("/v1/events"))
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    assert_eq!(status, 413);
    assert_error_body(&body, "payload_too_large");

    // A path segment that is not UTF-8 once decoded: 400 from the router's extractor.
    let (status, body) = answer(http.get(service.url("/v1/actions/%FF%FE"))).await;
    assert_eq!(status, 400);
    assert_error_body(&body, "bad_query");
    let (status, body) = answer(http.get(service.url("/v1/reviews/%C3%28/changes"))).await;
    assert_eq!(status, 400);
    assert_error_body(&body, "bad_query");

    // What hyper answers itself: raw bytes that are not UTF-8 in the path, a head too large,
    // too many headers.
    let (status, head, body) = raw_answer(
        &service,
        b"GET /v1/actions/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, 400);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_error_body(&body, "bad_query");
    let mut large = b"GET /v1/actions HTTP/1.1\r\nHost: x\r\n".to_vec();
    for n in 0..600 {
        large.extend_from_slice(format!("X-Filler-{n}: {}\r\n", "a".repeat(900)).as_bytes());
    }
    large.extend_from_slice(b"\r\n");
    let (status, head, body) = raw_answer(&service, &large);
    assert_eq!(status, 431);
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert_error_body(&body, "headers_too_large");
    let mut many = b"GET /v1/actions HTTP/1.1\r\nHost: x\r\n".to_vec();
    for n in 0..150 {
        many.extend_from_slice(format!("X-H-{n}: a\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let (status, _, body) = raw_answer(&service, &many);
    assert_eq!(status, 431);
    assert_error_body(&body, "headers_too_large");

    // The service still serves after each of them.
    let (status, _) = get_json(&http, &service.url("/v1/actions")).await;
    assert_eq!(status, 200);

    // A page gets an error page, not JSON, for a method it does not take.
    let response = http
        .delete(service.url("/reviews"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test]
async fn query_parameters_are_read_strictly() {
    let service = Service::start(&[]);
    let http = client();
    for (query, says) in [
        ("as_of=2019-01-01&as_of=2019-02-01", "more than once"),
        ("country=TH&country=LA", "more than once"),
        ("until_seq=%2B5", "until_seq"),
        ("until_seq=-1", "until_seq"),
        ("until_seq=%205", "until_seq"),
        ("until_seq=18446744073709551616", "until_seq"),
        // Found by schemathesis: the description says int64, and so does the service now.
        ("until_seq=9223372036854775808", "until_seq"),
        ("as_of=-0001-01-01", "as_of"),
        ("as_of=0000-01-01", "as_of"),
        ("as_of=%2B2019-01-01", "as_of"),
        ("as_of=2019-1-01", "as_of"),
        ("as_of=2019-02-30", "as_of"),
        ("known_at=0000-01-01T00:00:00Z", "known_at"),
        ("x=%FF", "UTF-8"),
    ] {
        let (status, body) = answer(http.get(service.url(&format!("/v1/actions?{query}")))).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_error_body(&body, "bad_query");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    // What reads is still taken: a plain number, a date from year 0001, `+` as a space.
    for query in [
        "until_seq=5",
        "as_of=0001-01-01",
        "as_of=2019-06-30&country=TH",
    ] {
        let (status, body) = answer(http.get(service.url(&format!("/v1/actions?{query}")))).await;
        assert_eq!(status, 200, "{query}: {body}");
    }
    // A page shows a repeated parameter as an error page.
    let response = http
        .get(service.url("/?as_of=2019-01-01&as_of=2019-02-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("more than once"));
}

/// An event refused for a field: its code, and the field named.
async fn refused(service: &Service, event: &Value) -> (u16, String, String) {
    let (status, body) = post_json(&client(), &service.url("/v1/events"), event).await;
    let detail = &body["error"]["details"][0];
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
        format!("{} {}", detail["path"], body["error"]["message"]),
    )
}

#[tokio::test]
async fn events_are_read_strictly() {
    let service = Service::start(&[]);
    let base = || registered("MIEUX-TH-2014-01", "TH");
    let mut cases = Vec::new();
    let mut lang = base();
    lang["lang"] = json!("zz");
    cases.push((lang, "/lang"));
    let mut upper = base();
    upper["lang"] = json!("EN");
    cases.push((upper, "/lang"));
    let mut year0 = base();
    year0["occurred_on"] = json!("0000-06-01");
    cases.push((year0, "/occurred_on"));
    let mut negative = base();
    negative["occurred_on"] = json!("-0001-06-01");
    cases.push((negative, "/occurred_on"));
    let mut reported = base();
    reported["reported_at"] = json!("0000-01-01T00:00:00Z");
    cases.push((reported, "/reported_at"));
    let mut nul = base();
    nul["data"]["title"] = json!("Study\u{0}visit");
    cases.push((nul, "/data/title"));
    let mut bell = base();
    bell["reported_by"] = json!("fo\u{7}");
    cases.push((bell, "/reported_by"));
    let mut delete = base();
    delete["data"]["partner_institutions"] = json!(["Ministry\u{7f}"]);
    cases.push((delete, "/data/partner_institutions/0"));
    let mut evidence = track(
        "MIEUX-TH-2014-01",
        "TH",
        "o-1",
        "legislation.pending",
        "2019-01-10",
    );
    evidence["evidence"] = json!([{"title": "ok"}, {"title": "Minutes\u{1b}[31m"}]);
    cases.push((evidence, "/evidence/1/title"));
    let mut key = base();
    key["data"]["note\u{7}"] = json!("a key with a bell in it");
    cases.push((key, "/data/note\\u0007"));
    let mut expected = track(
        "MIEUX-TH-2014-01",
        "TH",
        "o-1",
        "legislation.pending",
        "2019-01-10",
    );
    expected["data"] = json!({"expected": {"stage": "adopted", "by": "0000-12-31"}});
    cases.push((expected, "/data/expected/by"));
    for (event, path) in &cases {
        let (status, code, said) = refused(&service, event).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "schema_violation"),
            "{event}: {said}"
        );
        assert!(said.contains(path), "{path}: {said}");
    }
    // Nothing of them was stored; what reads is taken: tabs and line breaks, a real code.
    let mut good = base();
    good["lang"] = json!("lo");
    good["data"]["title"] = json!("Study visit\n\twith a line break");
    let (status, body) = post_json(&client(), &service.url("/v1/events?wait=true"), &good).await;
    assert_eq!(status, 202, "{body}");
    let events = all_events(&client(), &service).await;
    assert_eq!(events.len(), 1, "only the good event: {events:?}");
}

/// A payload over 64 KiB published straight to NATS is rejected, and the rejection store keeps
/// its first 64 KiB, saying how long it was; the page says it too.
#[tokio::test]
async fn the_rejection_store_keeps_at_most_64_kib_of_a_payload() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = principals_config(dir.path(), &format!("[nats]\nurl = \"{}\"\n\n", nats.url()));
    let service = Service::start(&["--config", &config]);
    eventually(30, async || {
        (client()
            .get(service.url("/readyz"))
            .send()
            .await
            .ok()?
            .status()
            == 200)
            .then_some(())
    })
    .await;
    let bus = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut big = registered("MIEUX-TH-2014-01", "TH");
    big["data"]["title"] = json!("é".repeat(50_000));
    let payload = serde_json::to_vec(&big).unwrap();
    assert!(payload.len() > 100_000);
    bus.publish("impact.events.TH.MIEUX-TH-2014-01", payload.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let rejection = eventually(30, async || {
        let response = client()
            .get(service.url("/v1/rejections"))
            .bearer_auth("admin-token")
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        body["rejections"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(rejection["code"], "payload_too_large", "{rejection}");
    let raw = rejection["raw"].as_str().unwrap();
    assert!(
        raw.len() <= 64 * 1024 && raw.len() > 64 * 1024 - 4,
        "{}",
        raw.len()
    );
    assert!(
        payload.starts_with(raw.as_bytes()),
        "the first bytes, cut at a character"
    );
    assert_eq!(rejection["raw_truncated"], true);
    assert_eq!(rejection["raw_bytes"], payload.len() as u64);
    let cookie = sign_in(&service, "admin-token").await;
    let (status, html) = page(&service, "/rejections", &cookie).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("the first 64 KiB of its {} bytes", payload.len())),
        "{html}"
    );
}

/// CONTRACT.md §11: every page, every asset and every error page says no other origin, no
/// sniffing and no framing; so does every API answer.
#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let service = demo().await;
    let paths = [
        "/",
        "/?page=99",
        "/actions/MIEUX-LA-2016-02",
        "/actions/MIEUX-LA-2016-02/compare",
        "/actions/NO-SUCH-ACTION",
        "/reviews",
        "/rejections",
        "/submit",
        "/submit?form=report",
        "/login",
        "/style.css",
        "/outbox.js",
        "/no-such-page",
        "/?as_of=1&as_of=2",
        "/v1/actions",
        "/v1/openapi.json",
    ];
    for path in paths {
        let response = page_client().get(service.url(path)).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
    }
}
