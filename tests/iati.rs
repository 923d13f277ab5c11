//! The IATI 2.03 export (CONTRACT.md §9): valid against the standard's own schema (xmllint,
//! the schema files in tests/data/iati-2.03) for the demo data and for random histories; each
//! outcome's stage, expected stage and verification in its result; the time-travel filters,
//! a field office's scope, the CLI's bytes and the `[iati]` keys. Real binary, real store.

mod common;

use common::*;
use impact::domain::fold::{Filters, ViewRules};
use impact::domain::ids::Country;
use impact::domain::validate::{Origin, Schemas};
use impact::ingest::{Incoming, ItemOutcome, Payload, Source, Writer};
use impact::metrics::Metrics;
use impact::store::Store;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const SCHEMA: &str = "tests/data/iati-2.03/iati-activities-schema.xsd";

/// Validates `xml` against the IATI 2.03 activity schema with xmllint: its complaints, if any.
fn schema_errors(xml: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.xml");
    std::fs::write(&file, xml).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA);
    let output = std::process::Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint (Debian's libxml2-utils; scripts/test installs it)");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    (!output.status.success()).then_some(said)
}

fn assert_valid(xml: &[u8]) {
    if let Some(errors) = schema_errors(xml) {
        let head: String = String::from_utf8_lossy(xml).chars().take(4000).collect();
        panic!("not valid IATI 2.03:\n{errors}\n{head}");
    }
}

/// What a test reads of one result: its stage, expected stage, the words of its actual, the
/// evidence links.
#[derive(Debug)]
struct Result_ {
    title: String,
    baseline: String,
    target: Option<String>,
    target_words: Option<String>,
    actual: String,
    actual_words: String,
    links: Vec<String>,
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    node.children()
        .find(|c| c.tag_name().name() == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", node.tag_name()))
}

/// The text of an element's narrative.
fn words(node: roxmltree::Node<'_, '_>) -> String {
    child(node, "narrative").text().unwrap_or("").to_owned()
}

/// The activities of an export: identifier → (recipient country, outcome id → result).
fn activities(xml: &[u8]) -> BTreeMap<String, (String, BTreeMap<String, Result_>)> {
    let text = std::str::from_utf8(xml).unwrap();
    let document = roxmltree::Document::parse(text).unwrap();
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "iati-activities");
    assert_eq!(root.attribute("version"), Some("2.03"));
    let mut found = BTreeMap::new();
    for activity in root.children().filter(|c| c.is_element()) {
        let identifier = child(activity, "iati-identifier")
            .text()
            .unwrap()
            .to_owned();
        let country = child(activity, "recipient-country")
            .attribute("code")
            .unwrap()
            .to_owned();
        let mut results = BTreeMap::new();
        for result in activity
            .children()
            .filter(|c| c.tag_name().name() == "result")
        {
            assert_eq!(result.attribute("type"), Some("2"), "an outcome result");
            let outcome = child(result, "reference").attribute("code").unwrap();
            let indicator = child(result, "indicator");
            assert_eq!(indicator.attribute("measure"), Some("5"), "qualitative");
            let period = child(indicator, "period");
            let target = period.children().find(|c| c.tag_name().name() == "target");
            let actual = child(period, "actual");
            let parsed = Result_ {
                title: words(child(result, "title")),
                baseline: child(indicator, "baseline")
                    .attribute("value")
                    .unwrap()
                    .to_owned(),
                target: target.map(|t| t.attribute("value").unwrap().to_owned()),
                target_words: target.map(|t| words(child(t, "comment"))),
                actual: actual.attribute("value").unwrap().to_owned(),
                actual_words: words(child(actual, "comment")),
                links: actual
                    .children()
                    .filter(|c| c.tag_name().name() == "document-link")
                    .map(|link| link.attribute("url").unwrap().to_owned())
                    .collect(),
            };
            results.insert(outcome.to_owned(), parsed);
        }
        found.insert(identifier, (country, results));
    }
    found
}

async fn iati(service: &Service, token: &str, query: &str) -> (u16, Vec<u8>) {
    get_bytes(service, token, &format!("/v1/exports/iati.xml{query}")).await
}

async fn csv_rows(service: &Service, token: &str, query: &str) -> Vec<BTreeMap<String, String>> {
    let response = client()
        .get(service.url(&format!("/v1/exports/outcomes.csv{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(&bytes[..]);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|record| {
            header
                .iter()
                .cloned()
                .zip(record.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

/// The demo data, now and at the mid-term date: valid, one activity per Action, and each
/// outcome's stage, expected stage and verification in its result as the CSV has them.
#[tokio::test]
async fn the_demo_s_iati_file_is_valid_and_says_each_outcome_s_stage() {
    let service = demo().await;
    for query in ["", "?as_of=2019-06-30"] {
        let response = client()
            .get(service.url(&format!("/v1/exports/iati.xml{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(response.headers()["content-type"], "application/xml");
        let xml = response.bytes().await.unwrap();
        assert_valid(&xml);
        let activities = activities(&xml);
        let (_, list) = get_json(&client(), &service.url(&format!("/v1/actions{query}"))).await;
        let actions = list["actions"].as_array().unwrap();
        assert_eq!(activities.len(), actions.len(), "one activity per Action");
        let rows = csv_rows(&service, "", query).await;
        assert!(rows.len() >= 5, "the demo has outcomes");
        let mut verified = 0;
        for row in &rows {
            let identifier = format!("XI-DEMO-IMPACT-{}", row["action_id"]);
            let (country, results) = &activities[&identifier];
            assert_eq!(country, &row["country"]);
            let result = &results[&row["outcome_id"]];
            assert_eq!(result.title, row["outcome_title"]);
            assert_eq!(result.actual, row["stage"], "{row:?}");
            assert_eq!(
                result.target.as_deref().unwrap_or(""),
                row["expected_stage"],
                "{row:?}"
            );
            if let Some(words) = &result.target_words {
                assert!(words.contains(&row["expected_by"][..4]), "{words}");
            }
            let verification = match row["verification"].as_str() {
                "verified" => {
                    verified += 1;
                    "; verified"
                }
                "disputed" => "; disputed",
                _ => "; reported, not verified",
            };
            assert!(
                result.actual_words.contains(verification),
                "{verification} in {:?}",
                result.actual_words
            );
            // A link for each evidence item with a url (the demo's have none).
            let evidence: usize = row["evidence_count"].parse().unwrap();
            assert!(result.links.len() <= evidence, "{row:?}");
            assert!(!result.baseline.is_empty());
        }
        if query.is_empty() {
            assert!(verified > 0, "the demo has a verified outcome");
            assert!(
                rows.iter().any(|row| !row["expected_stage"].is_empty()),
                "and an expectation"
            );
        }
        let results: usize = activities.values().map(|(_, r)| r.len()).sum();
        assert_eq!(results, rows.len(), "one result per outcome");
    }
    // A track filter keeps the Actions with an outcome on it, and only those outcomes.
    let (status, xml) = iati(&service, "", "?track=legislation").await;
    assert_eq!(status, 200);
    assert_valid(&xml);
    let rows = csv_rows(&service, "", "?track=legislation").await;
    let results: usize = activities(&xml).values().map(|(_, r)| r.len()).sum();
    assert_eq!(results, rows.len());
    // A bad filter is refused; an empty scope is a 404 (an IATI file holds one activity at least).
    assert_eq!(iati(&service, "", "?as_of=2019-13-01").await.0, 400);
    assert_eq!(iati(&service, "", "?bom=true").await.0, 400);
    let (status, body) = iati(&service, "", "?as_of=2000-01-01").await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "not_found");
}

fn iati_config(dir: &Path, section: &str) -> String {
    principals_config(dir, section)
}

/// `[iati]` from the configuration: the identifiers and the organisation as configured; a field
/// office's file holds its own countries only; a retraction seen under one side of `until_seq`
/// only; the CLI online and offline writes the endpoint's bytes.
#[tokio::test]
async fn the_configured_publisher_scope_time_travel_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let config = iati_config(
        dir.path(),
        "[iati]\nreporting_org_ref = \"XM-DAC-7\"\nreporting_org_name = \"Programme & partners <EU>\"\nidentifier_prefix = \"XM-DAC-7-MIEUX\"\n",
    );
    let mut service = Service::start(&["--config", &config]);
    let mut evidence = track(
        "MIEUX-TH-2014-01",
        "TH",
        "o-1",
        "legislation.pending",
        "2019-01-10",
    );
    evidence["evidence"] = json!([
        {"title": "Minutes", "url": "https://example.org/minutes.pdf"},
        {"title": "A note without a link"},
        {"title": "Letter \"signed\" <b>", "url": "https://example.org/l?a=1&b=2", "media_type": "application/pdf"}
    ]);
    evidence["data"] = json!({"title": "Victim protection law", "expected": {"stage": "adopted", "by": "2019-12-31"},
                              "contribution": {"level": "substantial", "confidence": "medium", "note": "drafting support"}});
    admin_posts(
        &service,
        json!([
            registered("MIEUX-TH-2014-01", "TH"),
            evidence,
            registered("MIEUX-LA-2016-02", "LA"),
            track(
                "MIEUX-LA-2016-02",
                "LA",
                "net",
                "network.created",
                "2018-05-01"
            ),
        ]),
    )
    .await;
    let (status, xml) = iati(&service, "admin-token", "").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&xml));
    assert_valid(&xml);
    let text = String::from_utf8(xml.clone()).unwrap();
    assert!(text.contains("<iati-identifier>XM-DAC-7-MIEUX-MIEUX-TH-2014-01</iati-identifier>"));
    assert!(text.contains(
        "<reporting-org ref=\"XM-DAC-7\" type=\"40\"><narrative>Programme &amp; partners &lt;EU&gt;</narrative></reporting-org>"
    ));
    let found = activities(&xml);
    let (_, results) = &found["XM-DAC-7-MIEUX-MIEUX-TH-2014-01"];
    let law = &results["o-1"];
    assert_eq!(law.title, "Victim protection law");
    assert_eq!(
        (law.baseline.as_str(), law.actual.as_str()),
        ("pending", "pending")
    );
    assert_eq!(law.target.as_deref(), Some("adopted"));
    assert!(law
        .target_words
        .as_deref()
        .unwrap()
        .contains("31 December 2019"));
    assert!(
        law.actual_words
            .contains("contribution: substantial, medium confidence (drafting support)"),
        "{}",
        law.actual_words
    );
    assert_eq!(
        law.links,
        [
            "https://example.org/minutes.pdf",
            "https://example.org/l?a=1&b=2"
        ],
        "a link for each evidence url, none for the note without one"
    );

    // A field office (TH) gets its own country's activity only.
    let (status, own) = iati(&service, "fo-token", "").await;
    assert_eq!(status, 200);
    assert_valid(&own);
    let own = activities(&own);
    assert_eq!(
        own.keys().collect::<Vec<_>>(),
        ["XM-DAC-7-MIEUX-MIEUX-TH-2014-01"]
    );
    assert!(!String::from_utf8_lossy(&iati(&service, "fo-token", "").await.1).contains("LA"));
    // A field office asking for another country gets nothing to publish.
    assert_eq!(iati(&service, "fo-token", "?country=LA").await.0, 404);

    // A retraction: present under `until_seq` before it, gone after.
    let events = all_events_as(&client(), &service, "admin-token").await;
    let network = events
        .iter()
        .find(|e| e["type"] == "network.created")
        .unwrap()
        .clone();
    let before = events
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    admin_posts(
        &service,
        json!([event(
            "event.retracted",
            "MIEUX-LA-2016-02",
            "LA",
            None,
            "2019-02-01",
            json!({"target_event_id": network["event_id"], "reason": "not this Action's"}),
        )]),
    )
    .await;
    let la = "XM-DAC-7-MIEUX-MIEUX-LA-2016-02";
    let (_, then) = iati(&service, "admin-token", &format!("?until_seq={before}")).await;
    assert_valid(&then);
    assert!(
        activities(&then)[la].1.contains_key("net"),
        "before the retraction"
    );
    assert!(String::from_utf8_lossy(&then).contains(&format!("up to log position {before}")));
    let (_, now) = iati(&service, "admin-token", "").await;
    assert_valid(&now);
    assert!(
        activities(&now)[la].1.is_empty(),
        "withdrawn once retracted"
    );

    // The CLI: online the endpoint's bytes; offline, with the same configuration, too.
    let query = format!("?until_seq={before}");
    let (_, endpoint) = iati(&service, "admin-token", &query).await;
    let online = std::process::Command::new(binary())
        .args(["outcomes", "--format", "iati", "--server", &service.base])
        .args(["--token", "admin-token", "--until-seq", &before.to_string()])
        .output()
        .unwrap();
    assert!(
        online.status.success(),
        "{}",
        String::from_utf8_lossy(&online.stderr)
    );
    assert_eq!(online.stdout, endpoint);
    service.terminate();
    let offline = std::process::Command::new(binary())
        .args([
            "outcomes",
            "--format",
            "iati",
            "--config",
            &config,
            "--data-dir",
        ])
        .arg(&service.data_dir)
        .args(["--until-seq", &before.to_string()])
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert_eq!(offline.stdout, endpoint);
    // Offline without `[iati]`: a clear refusal.
    let unconfigured = std::process::Command::new(binary())
        .args(["outcomes", "--format", "iati", "--data-dir"])
        .arg(&service.data_dir)
        .output()
        .unwrap();
    assert!(!unconfigured.status.success());
    assert!(String::from_utf8_lossy(&unconfigured.stderr).contains("[iati]"));
}

/// Without `[iati]` the export is off (a 404 that says how to turn it on) and no page links
/// it; each `[iati]` key that does not read stops the service at start, naming the key.
#[tokio::test]
async fn the_iati_keys_are_checked_at_start_and_the_export_is_off_without_them() {
    let service = Service::start(&[]);
    let (status, body) = iati(&service, "", "").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("[iati]"));
    let (_, index) = get_text_status(&service, "/").await;
    assert!(
        index.contains("outcomes.xlsx") && !index.contains("iati.xml"),
        "{index}"
    );

    let cases = [
        ("reporting_org_name = \"A\"", "iati.reporting_org_ref"),
        ("reporting_org_ref = \"XM-1\"", "iati.reporting_org_name"),
        (
            "reporting_org_ref = \"XM 1\"\nreporting_org_name = \"A\"",
            "iati.reporting_org_ref",
        ),
        (
            "reporting_org_ref = \"XM-1\"\nreporting_org_name = \"\"",
            "iati.reporting_org_name",
        ),
        (
            "reporting_org_ref = \"XM-1\"\nreporting_org_name = \"A\"\nreporting_org_type = 41",
            "iati.reporting_org_type",
        ),
        (
            "reporting_org_ref = \"XM-1\"\nreporting_org_name = \"A\"\nidentifier_prefix = \"a/b\"",
            "iati.identifier_prefix",
        ),
        (
            "reporting_org_ref = \"XM-1\"\nreporting_org_name = \"A\"\nprefix = \"x\"",
            "prefix",
        ),
    ];
    for (section, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("impact.toml");
        std::fs::write(&file, format!("[iati]\n{section}\n")).unwrap();
        let output = std::process::Command::new(binary())
            .args(["serve", "--http", "127.0.0.1:0", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{section}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains(key), "{section}: {said}");
    }
}

async fn get_text_status(service: &Service, path: &str) -> (u16, String) {
    let response = client().get(service.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

// ---- Random histories, through the real writer into a real store ----

const TRACKS: [(&str, &[&str]); 3] = [
    (
        "legislation",
        &[
            "identified",
            "drafting",
            "pending",
            "adopted",
            "implemented",
            "stalled",
            "repealed",
        ],
    ),
    ("network", &["created", "active", "dormant"]),
    ("practice", &["awareness", "applied", "routine", "lapsed"]),
];
const EXPECTED: [(&str, &str); 3] = [
    ("legislation", "adopted"),
    ("network", "active"),
    ("practice", "routine"),
];
const COUNTRIES: [&str; 3] = ["TH", "LA", "PH"];
/// Titles and links a careless or hostile reporter might send.
const TEXTS: [&str; 6] = [
    "Minutes",
    "<script>alert(1)</script> & \"quotes\" 'too'",
    "=HYPERLINK(\"x\")",
    "line\nbreak\ttab",
    "not XML \u{FFFE}\u{FFFF} chars",
    "ünïcödé — 日本語",
];
const URLS: [&str; 4] = [
    "https://example.org/minutes.pdf",
    "https://example.org/it's?b=1&c=%3C2%3E",
    "http://example.org/space%20d/doc.docx",
    "https://example.org/%C3%BCn%C3%AF#part",
];

#[derive(Clone, Debug)]
enum Step {
    /// Action, outcome, stage index, day, evidence (title, url?) indices, expectation, contribution.
    Report {
        action: usize,
        outcome: usize,
        stage: usize,
        day: u16,
        evidence: Vec<(usize, Option<usize>)>,
        expected: bool,
        contribution: bool,
        title: Option<usize>,
    },
    Register(usize, usize),
    Verify(usize, usize, u16, bool),
    Close(usize, u16),
    Retract(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let evidence =
        proptest::collection::vec((0..TEXTS.len(), proptest::option::of(0..URLS.len())), 0..20);
    prop_oneof![
        6 => (0..3usize, 0..3usize, 0..7usize, 0..3000u16, evidence, any::<bool>(), any::<bool>(), proptest::option::of(0..TEXTS.len()))
            .prop_map(|(action, outcome, stage, day, evidence, expected, contribution, title)| Step::Report {
                action, outcome, stage, day, evidence, expected, contribution, title }),
        1 => (0..3usize, 0..TEXTS.len()).prop_map(|(a, t)| Step::Register(a, t)),
        1 => (0..3usize, 0..3usize, 0..3000u16, any::<bool>()).prop_map(|(a, o, d, v)| Step::Verify(a, o, d, v)),
        1 => (0..3usize, 0..3000u16).prop_map(|(a, d)| Step::Close(a, d)),
        2 => any::<usize>().prop_map(Step::Retract),
    ]
}

fn day(offset: u16) -> String {
    (chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap() + chrono::Duration::days(offset as i64))
        .to_string()
}

fn action_of(index: usize) -> (String, &'static str) {
    (
        format!("MIEUX-{}-{index:04}", COUNTRIES[index]),
        COUNTRIES[index],
    )
}

fn event_of(step: &Step, submitted: &[Value], n: usize) -> Option<Value> {
    let id = uuid::Uuid::from_u128(n as u128 + 1).to_string();
    let base = |action: usize, kind: &str, on: String| {
        let (action, country) = action_of(action);
        json!({"event_id": id, "type": kind, "action_id": action, "country": country,
               "occurred_on": on, "reported_by": "prop", "data": {}})
    };
    Some(match step {
        Step::Report {
            action,
            outcome,
            stage,
            day: on,
            evidence,
            expected,
            contribution,
            title,
        } => {
            // Each outcome keeps to one track (another would be a track_mismatch).
            let (track, stages) = TRACKS[*outcome];
            let stage = stages[stage % stages.len()];
            let mut event = base(*action, &format!("{track}.{stage}"), day(*on));
            event["outcome_id"] = json!(format!("o-{outcome}"));
            let mut data = serde_json::Map::new();
            if *expected {
                data.insert(
                    "expected".into(),
                    json!({"stage": EXPECTED[*outcome].1, "by": day(on + 200)}),
                );
            }
            if *contribution {
                data.insert("contribution".into(), json!({"level": "contributory", "confidence": "low", "note": TEXTS[n % TEXTS.len()]}));
            }
            if let Some(title) = title {
                data.insert("title".into(), json!(TEXTS[*title]));
            }
            event["data"] = Value::Object(data);
            if !evidence.is_empty() {
                event["evidence"] = evidence
                    .iter()
                    .map(|(title, url)| match url {
                        Some(url) => json!({"title": TEXTS[*title], "url": URLS[*url]}),
                        None => json!({"title": TEXTS[*title]}),
                    })
                    .collect();
            }
            event
        }
        Step::Register(action, title) => {
            let mut event = base(*action, "action.registered", day(0));
            event["data"] =
                json!({"title": TEXTS[*title], "modality": "training", "partner_institutions": []});
            event
        }
        Step::Verify(action, outcome, on, verified) => {
            let kind = if *verified {
                "outcome.verified"
            } else {
                "outcome.disputed"
            };
            let mut event = base(*action, kind, day(*on));
            event["outcome_id"] = json!(format!("o-{outcome}"));
            event["data"] = if *verified {
                json!({"by": "x"})
            } else {
                json!({"by": "x", "reason": "y"})
            };
            event
        }
        Step::Close(action, on) => base(*action, "action.closed", day(*on)),
        Step::Retract(k) => {
            let target = submitted.get(k % submitted.len().max(1))?;
            json!({"event_id": id, "type": "event.retracted", "action_id": target["action_id"],
                   "country": target["country"], "occurred_on": day(2999), "reported_by": "prop",
                   "data": {"target_event_id": target["event_id"], "reason": "r"}})
        }
    })
}

/// The IATI export of every Action in `store` under `filters`, as an admin sees it, published
/// as the demo's organisation: how many activities, and the bytes.
fn export_all(store: &Store, last: u64, filters: &Filters) -> (u64, Vec<u8>) {
    let list = impact::api::actions::ListFilter::default();
    let sees = |_: &Country| true;
    let asked = impact::exports::Asked {
        filters,
        list: &list,
        sees: &sees,
    };
    let iati = impact::config::IatiConfig::demo();
    let mut xml = Vec::new();
    let rules = ViewRules::default();
    let written =
        impact::exports::iati::write_iati(store, last, &rules, &asked, &iati, &mut xml).unwrap();
    (written, xml)
}

/// The evidence links an outcome's visible events hold, read from the history as the API
/// gives it (each event marked `retracted` under the filters).
fn links_in_history(history: &[Value], outcome: &str) -> usize {
    history
        .iter()
        .filter(|e| e["outcome_id"] == outcome && e["retracted"] != true)
        .flat_map(|e| e["evidence"].as_array().cloned().unwrap_or_default())
        .filter(|item| item.get("url").is_some())
        .count()
}

fn run(steps: Vec<Step>, as_of: Option<u16>, until: Option<usize>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 8 << 20).unwrap();
    let schemas = Arc::new(Schemas::load());
    let (writer, thread) =
        Writer::spawn(store.clone(), schemas.clone(), Arc::new(Metrics::new())).unwrap();
    let mut submitted: Vec<Value> = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        let Some(event) = event_of(step, &submitted, n) else {
            continue;
        };
        let Ok(parsed) = schemas.parse_value(event.clone(), Origin::Client) else {
            continue;
        };
        let incoming = Incoming {
            payload: Payload::Parsed(Box::new(parsed)),
            origin: Origin::Client,
            source: Source::Http,
            submitted_by: None,
        };
        let outcome = writer
            .blocking_submit(vec![incoming], false)
            .unwrap()
            .remove(0);
        if let ItemOutcome::Applied { .. } = outcome {
            submitted.push(event);
        }
    }
    drop(writer);
    thread.join().unwrap();
    let last = store.last_seq().unwrap();
    let filters = Filters {
        as_of: as_of.map(|d| day(d).parse().unwrap()),
        until_seq: until.map(|k| (k as u64) % (last + 1)),
        known_at: None,
    };
    let rules = ViewRules::default();
    let iati = impact::config::IatiConfig::demo();
    let (written, xml) = export_all(&store, last, &filters);
    let statuses = impact::queries::statuses(&store, last, &filters, &rules, |_| true).unwrap();
    prop_assert_eq!(
        written as usize,
        statuses.len(),
        "one activity per Action with a view"
    );
    if written == 0 {
        prop_assert!(xml.is_empty(), "nothing is written for no activity");
        return Ok(());
    }
    if let Some(errors) = schema_errors(&xml) {
        return Err(TestCaseError::fail(format!(
            "not valid IATI 2.03: {errors}\n{}",
            String::from_utf8_lossy(&xml)
        )));
    }
    let found = activities(&xml);
    for status in &statuses {
        let view = &status.view;
        let identifier = format!("{}-{}", iati.identifier_prefix, view.action_id.as_str());
        let (country, results) = &found[&identifier];
        prop_assert_eq!(country.as_str(), view.country.as_str());
        prop_assert_eq!(results.len(), view.outcomes.len());
        let history = impact::queries::history(&store, last, &view.action_id, &filters)
            .unwrap()
            .unwrap();
        for outcome in &view.outcomes {
            let result = &results[outcome.outcome_id.as_str()];
            prop_assert_eq!(result.actual.as_str(), outcome.stage);
            prop_assert_eq!(
                result.target.as_deref(),
                outcome.expected.as_ref().map(|e| e.stage)
            );
            prop_assert_eq!(
                result.links.len(),
                links_in_history(&history, outcome.outcome_id.as_str()),
                "{}",
                outcome.outcome_id.as_str()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_export_as_valid_iati(
        steps in proptest::collection::vec(step(), 1..40),
        as_of in proptest::option::of(0..3000u16),
        until in proptest::option::of(any::<usize>()),
    ) {
        run(steps, as_of, until)?;
    }
}

/// Many Actions: rendered in batches by several threads, written in the Actions' order, every
/// one once, the same bytes each time.
#[test]
fn many_actions_come_out_once_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 8 << 20).unwrap();
    let schemas = Arc::new(Schemas::load());
    let (writer, thread) =
        Writer::spawn(store.clone(), schemas.clone(), Arc::new(Metrics::new())).unwrap();
    let actions = 333;
    for n in 0..actions {
        let action = format!("MIEUX-TH-{n:04}");
        let mut report = track(&action, "TH", "o-1", "network.created", "2019-01-10");
        report["evidence"] =
            json!([{"title": "Minutes", "url": format!("https://example.org/{n}.pdf")}]);
        let incoming = [registered(&action, "TH"), report].map(|event| Incoming {
            payload: Payload::Parsed(Box::new(
                schemas.parse_value(event, Origin::Client).unwrap(),
            )),
            origin: Origin::Client,
            source: Source::Http,
            submitted_by: None,
        });
        let outcomes = writer.blocking_submit(incoming.into(), false).unwrap();
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, ItemOutcome::Applied { .. })));
    }
    drop(writer);
    thread.join().unwrap();
    let last = store.last_seq().unwrap();
    let export = || export_all(&store, last, &Filters::default());
    let (written, xml) = export();
    assert_eq!(written, actions);
    assert_valid(&xml);
    let text = String::from_utf8(xml.clone()).unwrap();
    let identifiers: Vec<&str> = text
        .split("<iati-identifier>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap())
        .collect();
    let wanted: Vec<String> = (0..actions)
        .map(|n| format!("XI-DEMO-IMPACT-MIEUX-TH-{n:04}"))
        .collect();
    assert_eq!(identifiers, wanted, "every Action once, in order");
    assert_eq!(export().1, xml, "the same bytes again");
}
