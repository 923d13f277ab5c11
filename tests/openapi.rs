//! `GET /v1/openapi.json` (CONTRACT.md §10): the description holds every `/v1` route the router
//! serves and nothing else, is valid OpenAPI 3.1 (openapi-spec-validator, from PyPI), every
//! query parameter it names is one the service takes, and schemathesis (PyPI), run against the
//! real binary with each role's token, finds no answer that breaks it.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// Python's scripts directory, where scripts/test installs schemathesis (`st`).
fn python_scripts() -> String {
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .expect("python3");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_document_describes_every_route_of_the_router_and_nothing_else() {
    let (_, routes) = impact::api::v1_routes();
    let routed: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let document = impact::api::openapi::document();
    assert_eq!(document["openapi"], "3.1.0");
    let described: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    assert_eq!(
        routed, described,
        "the router's /v1 routes, the description's paths"
    );
    let posts: BTreeSet<&str> = routes
        .iter()
        .filter(|(method, _)| *method == "post")
        .map(|(_, path)| *path)
        .collect();
    assert_eq!(
        posts,
        impact::api::POST_PATHS.iter().copied().collect(),
        "the guard asks JSON of exactly the paths that take a POST"
    );
    // Every operation names its errors with the error body.
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path}"
            );
            if path != "/v1/openapi.json" && path != "/v1/schemas" {
                for status in ["400", "401", "403", "503"] {
                    let error = &responses[status]["content"]["application/json"]["schema"];
                    assert_eq!(
                        error["$ref"], "#/components/schemas/ErrorBody",
                        "{status} of {method} {path}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1_and_its_parameters_are_taken() {
    let service = Service::start(&["--demo"]);
    let (status, document) = get_json(&client(), &service.url("/v1/openapi.json")).await;
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let validated = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))",
        ])
        .arg(&file)
        .output()
        .expect("python3 with openapi-spec-validator (scripts/test installs it)");
    assert!(
        validated.status.success(),
        "{}",
        String::from_utf8_lossy(&validated.stderr)
    );
    // Each documented query parameter, given its example (or one its schema allows), is one the
    // endpoint takes: never "unknown query parameter".
    for (path, operations) in document["paths"].as_object().unwrap() {
        let Some(get) = operations.get("get") else {
            continue;
        };
        for parameter in get["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] != "query" {
                continue;
            }
            let name = parameter["name"].as_str().unwrap();
            let value = match &parameter["example"] {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let path = path
                .replace("{id}", "MIEUX-TH-2014-01")
                .replace("{name}", "event.v1");
            let url = service.url(&format!("{path}?{name}={}", value.replace(':', "%3A")));
            let response = client().get(&url).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert!(
                !body.contains("unknown query parameter"),
                "{url}: {status} {body}"
            );
        }
    }
}

/// schemathesis, every check, against the demo data, as each role in turn and without a token.
#[tokio::test]
async fn schemathesis_finds_no_answer_that_breaks_the_description() {
    let dir = tempfile::tempdir().unwrap();
    let config = principals_config(dir.path(), "");
    let service = Service::start(&["--config", &config, "--demo"]);
    eventually(30, async || {
        let response = client()
            .get(service.url("/v1/actions/MIEUX-LA-2016-02"))
            .bearer_auth("admin-token")
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let st = format!("{}/st", python_scripts());
    let settings = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schemathesis.toml");
    for token in ["admin-token", "eval-token", "fo-token"] {
        let output = std::process::Command::new(&st)
            .args(["--config-file", settings, "run"])
            .arg(service.url("/v1/openapi.json"))
            .args(["--checks", "all", "--max-time", "40", "--workers", "2"])
            .args(["--suppress-health-check", "all", "--seed", "20261207"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .current_dir(dir.path())
            .output()
            .expect("schemathesis (scripts/test installs it)");
        assert!(
            output.status.success(),
            "as {token}:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
