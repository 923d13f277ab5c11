//! NATS as deployed (CONTRACT.md §6.1, §6.2): the repository's shipped nats-server
//! configuration with its least-privilege users, TLS with certificates made here, and each way
//! of authenticating, through real nats-server processes and the real binary.

mod common;

use async_nats::jetstream;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// The service's configuration: `nats` lines under `[nats]`, and the tests' principals.
fn service_config(dir: &Path, nats: &str) -> String {
    principals_config(dir, &format!("[nats]\n{nats}\npublish_timeout_ms = 3000\n"))
}

/// `impact serve` that must fail at start: its stderr (a start that hangs fails the test).
fn start_fails(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(binary())
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--config",
            config,
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return stderr;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the start did not fail within 20 s (a hang)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn post_as(
    http: &reqwest::Client,
    service: &Service,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let response = http
        .post(service.url("/v1/events?wait=true"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn wait_ready(http: &reqwest::Client, service: &Service) {
    eventually(30, async || {
        (http.get(service.url("/readyz")).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_permissions_hold_a_field_office_to_its_own_country_and_subjects() {
    let nats = NatsServer::with_config(
        |port, store| deploy_config("nats-server.conf", port, store, &[]),
        &shipped_passwords(),
    );
    let dir = tempfile::tempdir().unwrap();
    let password = write(dir.path(), "password", SERVICE_NATS_PASSWORD);
    let config = service_config(
        dir.path(),
        &format!(
            "url = \"{}\"\nuser = \"impact\"\npassword_file = \"{password}\"\ninbox_prefix = \"_INBOX_impact\"",
            nats.url()
        ),
    );
    let service = Service::start(&["--config", &config]);
    let http = client();
    wait_ready(&http, &service).await;

    // Over HTTP as the Thai principal: stored with its name.
    let action = "MIEUX-TH-2014-01";
    let by_http = registered(action, "TH");
    let (status, answer) = post_as(&http, &service, "fo-token", &json!([by_http])).await;
    assert_eq!(status, 202, "{answer}");

    // Straight to NATS as the Thai field office's user.
    let thai = async_nats::ConnectOptions::with_user_and_password(
        "fo-th".into(),
        THAI_NATS_PASSWORD.into(),
    )
    .custom_inbox_prefix("_INBOX_fo-th")
    .connect(nats.url())
    .await
    .unwrap();
    let mut js = jetstream::new(thai.clone());
    js.set_timeout(Duration::from_secs(2));
    let own = track(
        action,
        "TH",
        "vot-protocol",
        "legislation.pending",
        "2018-11-20",
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Impact-Submitted-By", "admin");
    js.publish_with_headers(
        format!("impact.events.TH.{action}"),
        headers,
        own.to_string().into(),
    )
    .await
    .unwrap()
    .await
    .expect("its own country's subject takes it");
    // Refused by the server: another country, the service's subject, the stream's deletion.
    let laos = track(
        "MIEUX-LA-2019-01",
        "LA",
        "o",
        "network.created",
        "2019-01-01",
    );
    let forged = track(action, "TH", "forged", "network.created", "2019-01-01");
    for (subject, event) in [
        ("impact.events.LA.MIEUX-LA-2019-01".to_owned(), &laos),
        (format!("impact.submitted.TH.{action}"), &forged),
    ] {
        let acked = match js.publish(subject.clone(), event.to_string().into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!acked, "{subject} was taken from the Thai field office");
    }
    let deleted = thai
        .request("$JS.API.STREAM.DELETE.IMPACT", "".into())
        .await;
    assert!(
        deleted.is_err(),
        "the field office reached the JetStream API"
    );

    let events = eventually(30, async || {
        let events = all_events_as(&http, &service, "admin-token").await;
        (events.len() >= 2).then_some(events)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = if events.len() == 2 {
        all_events_as(&http, &service, "admin-token").await
    } else {
        events
    };
    assert_eq!(events.len(), 2, "nothing refused was stored: {events:?}");
    let of = |event: &Value| {
        events
            .iter()
            .find(|e| e["event_id"] == event["event_id"])
            .unwrap_or_else(|| panic!("{} is stored", event["event_id"]))
    };
    assert_eq!(of(&by_http)["submitted_by"], "fo-bangkok");
    assert_eq!(
        of(&own)["submitted_by"],
        Value::Null,
        "the header is not believed"
    );
    let js_admin = jetstream::new(thai);
    assert!(
        js_admin.get_stream("IMPACT").await.is_err(),
        "no stream info for a field office"
    );
}

/// A CA, a server certificate it signs for 127.0.0.1, and another CA that signed nothing.
fn certificates(dir: &Path) -> (String, String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    };
    let (ca_cert, ca_key) = ca("impact test CA");
    let (stranger, _) = ca("a CA nobody asked");
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca_cert, &ca_key)
        .unwrap();
    (
        write(dir, "ca.pem", &ca_cert.pem()),
        write(dir, "stranger.pem", &stranger.pem()),
        write(dir, "server.pem", &server.pem()),
        write(dir, "server-key.pem", &server_key.serialize_pem()),
    )
}

#[tokio::test]
async fn tls_connects_to_a_server_the_ca_signed_and_refuses_one_it_did_not() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, stranger, cert, key) = certificates(dir.path());
    let nats = NatsServer::with_config(
        |port, store| {
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\ntls {{ cert_file: {cert:?}, key_file: {key:?} }}\n",
                store.display().to_string()
            )
        },
        &[],
    );
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let good = service_config(
        dir.path(),
        &format!("url = \"{url}\"\ntls_ca_file = \"{ca}\""),
    );
    let service = Service::start(&["--config", &good]);
    let http = client();
    wait_ready(&http, &service).await;
    let (status, answer) = post_as(
        &http,
        &service,
        "fo-token",
        &json!(registered("MIEUX-TH-2014-01", "TH")),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    drop(service);

    let sub = tempfile::tempdir().unwrap();
    let bad = service_config(
        sub.path(),
        &format!("url = \"{url}\"\ntls_ca_file = \"{stranger}\""),
    );
    let stderr = start_fails(&bad);
    assert!(stderr.contains("nats.tls_ca_file"), "{stderr}");
}

#[tokio::test]
async fn each_way_to_authenticate_connects_and_each_mistake_fails_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A token.
    let nats = NatsServer::with_config(
        |port, store| {
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\nauthorization {{ token: \"t0ken-for-tests\" }}\n",
                store.display().to_string()
            )
        },
        &[],
    );
    let token = write(dir.path(), "token", "t0ken-for-tests\n");
    let config = service_config(
        dir.path(),
        &format!("url = \"{}\"\ntoken_file = \"{token}\"", nats.url()),
    );
    let service = Service::start(&["--config", &config]);
    let http = client();
    wait_ready(&http, &service).await;
    let (status, _) = post_as(
        &http,
        &service,
        "fo-token",
        &json!(registered("MIEUX-TH-2014-01", "TH")),
    )
    .await;
    assert_eq!(status, 202);
    drop(service);
    drop(nats);

    // An nkey.
    let pair = nkeys::KeyPair::new_user();
    let nats = NatsServer::with_config(
        |port, store| {
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\nauthorization {{ users: [{{ nkey: {} }}] }}\n",
                store.display().to_string(),
                pair.public_key()
            )
        },
        &[],
    );
    let sub = tempfile::tempdir().unwrap();
    let seed = write(sub.path(), "seed", &pair.seed().unwrap());
    let config = service_config(
        sub.path(),
        &format!("url = \"{}\"\nnkey_seed_file = \"{seed}\"", nats.url()),
    );
    let service = Service::start(&["--config", &config]);
    wait_ready(&http, &service).await;
    drop(service);
    drop(nats);

    // The shipped users, a wrong password: refused at start, naming the keys.
    let nats = NatsServer::with_config(
        |port, store| deploy_config("nats-server.conf", port, store, &[]),
        &shipped_passwords(),
    );
    let sub = tempfile::tempdir().unwrap();
    let wrong = write(sub.path(), "password", "not-the-password");
    let config = service_config(
        sub.path(),
        &format!(
            "url = \"{}\"\nuser = \"impact\"\npassword_file = \"{wrong}\"",
            nats.url()
        ),
    );
    let stderr = start_fails(&config);
    assert!(stderr.contains("nats.user, nats.password_file"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");

    // Credentials in the URL; an unreadable credentials file.
    let sub = tempfile::tempdir().unwrap();
    let config = service_config(
        sub.path(),
        &format!(
            "url = \"nats://impact:{SERVICE_NATS_PASSWORD}@127.0.0.1:{}\"",
            nats.port
        ),
    );
    let stderr = start_fails(&config);
    assert!(stderr.contains("carries credentials"), "{stderr}");
    assert!(!stderr.contains(SERVICE_NATS_PASSWORD), "{stderr}");
    let creds = sub.path().join("impact.creds");
    std::fs::write(&creds, "").unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let config = service_config(
        sub.path(),
        &format!(
            "url = \"{}\"\ncreds_file = \"{}\"",
            nats.url(),
            creds.display()
        ),
    );
    let stderr = start_fails(&config);
    assert!(stderr.contains("nats.creds_file"), "{stderr}");
}

#[tokio::test]
async fn a_publish_the_servers_permissions_refuse_is_answered_at_once_saying_so() {
    let nats = NatsServer::with_config(
        |port, store| deploy_config("nats-server.conf", port, store, &[]),
        &shipped_passwords(),
    );
    let dir = tempfile::tempdir().unwrap();
    // Misconfigured: the service runs as the Thai field office's user, which may not publish
    // on the service's subjects.
    let password = write(dir.path(), "password", THAI_NATS_PASSWORD);
    let config = service_config(
        dir.path(),
        &format!(
            "url = \"{}\"\nuser = \"fo-th\"\npassword_file = \"{password}\"\ninbox_prefix = \"_INBOX_fo-th\"",
            nats.url()
        ),
    );
    let service = Service::start(&["--config", &config]);
    let http = client();
    eventually(20, async || {
        http.get(service.url("/healthz"))
            .send()
            .await
            .ok()
            .map(drop)
    })
    .await;
    let started = std::time::Instant::now();
    let (status, body) = post_as(
        &http,
        &service,
        "fo-token",
        &json!(registered("MIEUX-TH-2014-01", "TH")),
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.to_lowercase().contains("permissions violation"),
        "{message}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "answered after {waited:?}, not at once"
    );
}
