//! The pages in a real headless Chromium, driven over WebDriver (Debian's chromium and
//! chromium-driver, which `scripts/test` installs): sign in as the Thai field office, see only
//! Thai Actions, open one, sign out. Screenshots of `/` and of an Action page are written to
//! `target/screenshots/` (README.md) for a person to look at.

mod common;

use common::*;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver, installed by scripts/test)");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            _profile: tempfile::tempdir().unwrap(),
        }
    }

    /// A fresh headless Chromium, with the flags this network needs (no background calls).
    async fn browser(&self) -> fantoccini::Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1200,900",
                    format!("--user-data-dir={}", self._profile.path().display()),
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session in Chromium")
    }
}

/// The text of the first element `at` finds.
async fn text_of(browser: &fantoccini::Client, at: Locator<'_>) -> String {
    browser.find(at).await.unwrap().text().await.unwrap()
}

async fn click(browser: &fantoccini::Client, at: Locator<'_>) {
    browser.find(at).await.unwrap().click().await.unwrap();
}

/// The page as it looks now, to `target/screenshots/<name>`, for a person to look at.
async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), browser.screenshot().await.unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_office_signs_in_sees_only_its_country_and_signs_out() {
    let (_dir, service) = demo_service().await;

    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(&service.url("/")).await.unwrap();
    // No session: the sign-in page, which comes back to `/`.
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/login"));
    let token = browser.find(Locator::Id("token")).await.unwrap();
    token.send_keys("fo-token").await.unwrap();
    click(&browser, Locator::Css("form.login button")).await;
    eventually(10, async || {
        (browser.current_url().await.ok()?.path() == "/").then_some(())
    })
    .await;
    let text = text_of(&browser, Locator::Css("main")).await;
    assert!(text.contains("MIEUX-TH-2014-01"), "{text}");
    for other in ["MIEUX-LA-2016-02", "MIEUX-KG-2018-06", "MIEUX-PH-2015-03"] {
        assert!(
            !text.contains(other),
            "{other} shown to the Thai field office"
        );
    }
    let header = text_of(&browser, Locator::Css("header")).await;
    assert!(
        header.contains("Signed in as fo-bangkok (field office)"),
        "{header}"
    );
    screenshot(&browser, "index.png").await;

    click(&browser, Locator::LinkText("MIEUX-TH-2014-01")).await;
    let heading = text_of(&browser, Locator::Css("h1")).await;
    assert!(heading.contains("Thai and EU authorities"), "{heading}");
    let page = text_of(&browser, Locator::Css("main")).await;
    assert!(
        page.contains("in progress") && page.contains("(stated)"),
        "{page}"
    );
    screenshot(&browser, "action.png").await;

    // The time-travel control: the Action as it stood on 1 January 2016.
    let as_of = browser.find(Locator::Id("as_of")).await.unwrap();
    as_of.send_keys("01012016").await.unwrap();
    click(&browser, Locator::Css("form.filters button")).await;
    eventually(10, async || {
        let url = browser.current_url().await.ok()?;
        url.query()?.contains("as_of=2016-01-01").then_some(())
    })
    .await;
    let then = text_of(&browser, Locator::Css("main")).await;
    assert!(then.contains("as of 1 January 2016"), "{then}");
    assert!(
        !then.contains("vot-protocol"),
        "the protocol outcome came later: {then}"
    );
    assert!(then.contains("established (now)"), "{then}");

    // A change made now, then the compare page: the Action before it against now.
    let verified = json!({"event_id": new_id(), "type": "outcome.verified", "action_id": "MIEUX-TH-2014-01",
        "country": "TH", "outcome_id": "vot-protocol", "occurred_on": "2026-01-15", "reported_by": "eval", "data": {"by": "eval"}});
    let answer: serde_json::Value = client()
        .post(service.url("/v1/events?wait=true"))
        .bearer_auth("admin-token")
        .json(&verified)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seq = answer["results"][0]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("applied: {answer}"));
    browser
        .goto(&service.url(&format!("/actions/MIEUX-TH-2014-01?until_seq={}", seq - 1)))
        .await
        .unwrap();
    click(
        &browser,
        Locator::LinkText("Compare this point in time with another"),
    )
    .await;
    let compared = text_of(&browser, Locator::Css("main")).await;
    assert!(
        compared.contains(&format!("Left: as known at log position {}", seq - 1)),
        "{compared}"
    );
    assert!(
        compared.contains("Verification reported, not verified verified"),
        "the verification just made: {compared}"
    );
    screenshot(&browser, "compare.png").await;

    // Another country's Action, asked for by address: refused.
    browser
        .goto(&service.url("/actions/MIEUX-LA-2016-02"))
        .await
        .unwrap();
    let refused = browser.source().await.unwrap();
    assert!(
        refused.contains("You may not open this") && !refused.contains("migration data"),
        "{refused}"
    );

    browser.goto(&service.url("/")).await.unwrap();
    click(&browser, Locator::Css("form.signout button")).await;
    eventually(10, async || {
        browser
            .current_url()
            .await
            .ok()?
            .path()
            .starts_with("/login")
            .then_some(())
    })
    .await;
    browser.goto(&service.url("/")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/login"),
        "signed out: the pages ask for sign-in again"
    );
    browser.close().await.unwrap();
}

/// The service with the demo data and the test principals, once the demo has loaded.
async fn demo_service() -> (tempfile::TempDir, Service) {
    let dir = tempfile::tempdir().unwrap();
    let config = principals_config(dir.path(), "[server]\ncookie_secure = false\n");
    let service = Service::start(&["--config", &config, "--demo"]);
    // The demo data loads through the bus at start: wait for the Lao Action to be there.
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
    (dir, service)
}

#[tokio::test]
async fn an_evaluator_runs_a_review_from_its_form_and_opens_it() {
    let (_dir, service) = demo_service().await;
    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(&service.url("/reviews")).await.unwrap();
    let token = browser.find(Locator::Id("token")).await.unwrap();
    token.send_keys("eval-token").await.unwrap();
    click(&browser, Locator::Css("form.login button")).await;
    eventually(10, async || {
        (browser.current_url().await.ok()?.path() == "/reviews").then_some(())
    })
    .await;
    assert!(text_of(&browser, Locator::Css("main"))
        .await
        .contains("No review yet"));
    let as_of = browser.find(Locator::Id("run_as_of")).await.unwrap();
    as_of.send_keys("06302019").await.unwrap();
    click(&browser, Locator::Css("form[action='/reviews'] button")).await;
    eventually(10, async || {
        let path = browser.current_url().await.ok()?.path().to_owned();
        path.starts_with("/reviews/review-").then_some(())
    })
    .await;
    let report = text_of(&browser, Locator::Css("main")).await;
    assert!(report.contains("Status on 30 June 2019"), "{report}");
    assert!(
        report.contains("This is the first review of all countries"),
        "{report}"
    );
    assert!(report.contains("New findings"), "{report}");
    screenshot(&browser, "review.png").await;
    click(&browser, Locator::LinkText("← all reviews")).await;
    let list = text_of(&browser, Locator::Css("main")).await;
    assert!(
        list.contains("30 June 2019") && list.contains("run by hand"),
        "{list}"
    );
    click(&browser, Locator::Css("form.signout button")).await;
    eventually(10, async || {
        let path = browser.current_url().await.ok()?.path().to_owned();
        path.starts_with("/login").then_some(())
    })
    .await;
    browser.close().await.unwrap();
}
