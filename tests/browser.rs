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
        // chromedriver can take its port before it takes a session, and reset the first
        // request on a busy machine: a few tries before giving up.
        let mut tries = 0;
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{}", self.port))
                .await
            {
                Ok(browser) => return browser,
                Err(error) if tries < 4 => {
                    tries += 1;
                    eprintln!("no WebDriver session yet ({error}); trying again");
                    tokio::time::sleep(Duration::from_millis(500 * tries)).await;
                }
                Err(error) => panic!("a WebDriver session in Chromium: {error}"),
            }
        }
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
    refused(
        &browser,
        &service,
        "/actions/MIEUX-LA-2016-02",
        "migration data",
    )
    .await;

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
    demo_service_at("127.0.0.1:0").await
}

/// `demo_service`, listening at `http`.
async fn demo_service_at(http: &str) -> (tempfile::TempDir, Service) {
    let dir = tempfile::tempdir().unwrap();
    let config = principals_config(dir.path(), "[server]\ncookie_secure = false\n");
    let service = Service::start_at(http, &["--config", &config, "--demo"]);
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

/// Signs in with `token` on the sign-in page `path` sent the browser to, and waits to be back.
async fn sign_in_at(browser: &fantoccini::Client, service: &Service, path: &str, token: &str) {
    browser.goto(&service.url(path)).await.unwrap();
    let field = browser.find(Locator::Id("token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    click(browser, Locator::Css("form.login button")).await;
    let want = path.split('?').next().unwrap().to_owned();
    eventually(10, async || {
        (browser.current_url().await.ok()?.path() == want).then_some(())
    })
    .await;
}

/// Sets a form field's value by its name (a date input, a select, a hidden choice) as a script
/// would, so a test can send what the page's own controls would not offer.
async fn set_field(browser: &fantoccini::Client, name: &str, value: &str) {
    browser
        .execute(
            "const field = document.querySelector(`[name='${arguments[0]}']`);
             if (field.tagName === 'SELECT' && ![...field.options].some(o => o.value === arguments[1])) {
               field.add(new Option(arguments[1], arguments[1]));
             }
             field.value = arguments[1];",
            vec![json!(name), json!(value)],
        )
        .await
        .unwrap();
}

/// Opens `path` and sees the page that refuses it, with nothing of what it would show
/// (`hidden`) in it.
async fn refused(browser: &fantoccini::Client, service: &Service, path: &str, hidden: &str) {
    browser.goto(&service.url(path)).await.unwrap();
    let page = browser.source().await.unwrap();
    assert!(
        page.contains("You may not open this") && !page.contains(hidden),
        "{path}: {page}"
    );
}

/// Picks `value` in the select `id`, as a person does.
async fn choose(browser: &fantoccini::Client, id: &str, value: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

/// Sends the follow-up form on the page (through its script, as a person's click does).
async fn submit_form(browser: &fantoccini::Client) {
    click(
        browser,
        Locator::Css("form.submit-form button[type=submit]"),
    )
    .await;
}

async fn type_into(browser: &fantoccini::Client, name: &str, text: &str) {
    let field = browser
        .find(Locator::Css(&format!("[name='{name}']")))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn value_of(browser: &fantoccini::Client, name: &str) -> String {
    browser
        .find(Locator::Css(&format!("[name='{name}']")))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// How many times `event_id` is in the Action's history (read by the admin over the API).
async fn times_recorded(service: &Service, action: &str, event_id: &str) -> usize {
    let response = client()
        .get(service.url(&format!("/v1/actions/{action}/events")))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return 0;
    }
    let history: serde_json::Value = response.json().await.unwrap();
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["event_id"] == event_id)
        .count()
}

/// The element with `id`, once the page shows it (the page's text in the panic if it never does).
async fn wait_for_id(browser: &fantoccini::Client, id: &str) -> fantoccini::elements::Element {
    for _ in 0..100 {
        if let Ok(element) = browser.find(Locator::Id(id)).await {
            return element;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = text_of(browser, Locator::Css("main")).await;
    panic!("no #{id} on the page: {text}");
}

async fn wait_for_path(browser: &fantoccini::Client, prefix: &str) {
    eventually(15, async || {
        let url = browser.current_url().await.ok()?;
        url.path().starts_with(prefix).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_office_reports_in_the_browser_and_an_evaluator_verifies() {
    let (_dir, service) = demo_service().await;
    let driver = Driver::start();
    let browser = driver.browser().await;
    const NEW: &str = "MIEUX-TH-2020-07";

    // Register an Action.
    sign_in_at(&browser, &service, "/submit", "fo-token").await;
    click(&browser, Locator::LinkText("Register an Action")).await;
    type_into(&browser, "action_id", NEW).await;
    type_into(&browser, "data.title", "Training on victim identification").await;
    choose(&browser, "data.modality", "training").await;
    type_into(
        &browser,
        "data.partner_institutions",
        "Ministry of Social Development",
    )
    .await;
    set_field(&browser, "occurred_on", "2020-03-01").await;
    submit_form(&browser).await;
    wait_for_path(&browser, &format!("/actions/{NEW}")).await;
    let page = text_of(&browser, Locator::Css("main")).await;
    assert!(
        page.contains("Recorded: Action registered, 1 March 2020"),
        "{page}"
    );

    // Report a pending law with its expected adoption and an evidence link.
    click(&browser, Locator::LinkText("report a stage of an outcome")).await;
    choose(&browser, "track", "legislation").await;
    click(&browser, Locator::Css("form.filters button")).await;
    wait_for_path(&browser, "/submit").await;
    eventually(10, async || {
        browser
            .find(Locator::Id("type-legislation.pending"))
            .await
            .ok()
    })
    .await;
    type_into(&browser, "outcome_id", "vot-law").await;
    click(&browser, Locator::Id("type-legislation.pending")).await;
    type_into(
        &browser,
        "data.title",
        "Victim protection amendment before parliament",
    )
    .await;
    choose(&browser, "data.expected.stage", "adopted").await;
    set_field(&browser, "data.expected.by", "2027-12-31").await;
    set_field(&browser, "occurred_on", "2025-11-20").await;
    type_into(&browser, "evidence.0.title", "Parliament's order paper").await;
    type_into(
        &browser,
        "evidence.0.url",
        "https://example.org/order-paper.pdf",
    )
    .await;
    screenshot(&browser, "submit.png").await;
    submit_form(&browser).await;
    wait_for_path(&browser, &format!("/actions/{NEW}")).await;
    let page = text_of(&browser, Locator::Css("main")).await;
    assert!(
        page.contains("Recorded: legislation: pending of vot-law"),
        "{page}"
    );
    assert!(
        page.contains("adopted by 31 December 2027 (stated)"),
        "{page}"
    );
    assert!(page.contains("pending (now)"), "{page}");

    // The same rendered form sent twice: one event.
    let report = format!("/submit?form=report&action_id={NEW}&track=legislation");
    browser.goto(&service.url(&report)).await.unwrap();
    type_into(&browser, "outcome_id", "vot-law").await;
    click(&browser, Locator::Id("type-legislation.adopted")).await;
    set_field(&browser, "occurred_on", "2026-01-10").await;
    let event_id = value_of(&browser, "event_id").await;
    browser
        .execute(
            "const form = document.querySelector('form.submit-form');
             form.requestSubmit(); form.requestSubmit();",
            vec![],
        )
        .await
        .unwrap();
    wait_for_path(&browser, &format!("/actions/{NEW}")).await;
    eventually(10, async || {
        (times_recorded(&service, NEW, &event_id).await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        times_recorded(&service, NEW, &event_id).await,
        1,
        "sent twice, recorded once"
    );

    // An impossible choice: an expected stage of another track; then a date in the future.
    browser.goto(&service.url(&report)).await.unwrap();
    type_into(&browser, "outcome_id", "vot-law").await;
    click(&browser, Locator::Id("type-legislation.in_force")).await;
    type_into(&browser, "data.title", "Typed before the error").await;
    set_field(&browser, "occurred_on", "2026-02-01").await;
    set_field(&browser, "data.expected.stage", "ratified").await;
    set_field(&browser, "data.expected.by", "2027-01-01").await;
    submit_form(&browser).await;
    let error = eventually(10, async || {
        browser
            .find(Locator::Id("data.expected.stage-error"))
            .await
            .ok()
    })
    .await;
    assert!(error
        .text()
        .await
        .unwrap()
        .contains("(expected_stage_invalid)"));
    assert_eq!(
        value_of(&browser, "data.title").await,
        "Typed before the error"
    );
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(2)).to_string();
    set_field(&browser, "data.expected.stage", "").await;
    set_field(&browser, "data.expected.by", "").await;
    set_field(&browser, "occurred_on", &tomorrow).await;
    submit_form(&browser).await;
    let error = wait_for_id(&browser, "occurred_on-error").await;
    assert!(error.text().await.unwrap().contains("(occurred_in_future)"));
    assert_eq!(
        value_of(&browser, "data.title").await,
        "Typed before the error"
    );
    assert_eq!(
        value_of(&browser, "occurred_on").await,
        tomorrow,
        "what was typed is kept"
    );

    // No form for another country's Action.
    refused(
        &browser,
        &service,
        "/submit?form=report&action_id=MIEUX-LA-2016-02",
        "submit-form",
    )
    .await;
    browser.goto(&service.url("/")).await.unwrap();
    click(&browser, Locator::Css("form.signout button")).await;
    wait_for_path(&browser, "/login").await;

    // An evaluator verifies the outcome.
    sign_in_at(&browser, &service, &format!("/actions/{NEW}"), "eval-token").await;
    click(&browser, Locator::LinkText("verify an outcome")).await;
    choose(&browser, "outcome_id", "vot-law").await;
    type_into(&browser, "data.by", "the parliament's records").await;
    set_field(&browser, "occurred_on", "2026-02-15").await;
    submit_form(&browser).await;
    wait_for_path(&browser, &format!("/actions/{NEW}")).await;
    let page = text_of(&browser, Locator::Css("main")).await;
    assert!(
        page.contains("Recorded: outcome verified of vot-law"),
        "{page}"
    );
    assert!(page.contains(" · verified"), "{page}");
    browser.close().await.unwrap();
}

/// A submission made while the service is down waits in the browser, is shown as waiting, and
/// arrives exactly once when the service is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_made_while_the_service_is_down_arrives_once_when_it_is_back() {
    let port = free_port();
    let (_dir, mut service) = demo_service_at(&format!("127.0.0.1:{port}")).await;
    let driver = Driver::start();
    let browser = driver.browser().await;
    let path = "/submit?form=report&action_id=MIEUX-TH-2014-01&track=practice";
    sign_in_at(&browser, &service, path, "fo-token").await;
    type_into(&browser, "outcome_id", "outreach").await;
    click(&browser, Locator::Id("type-practice.applied")).await;
    type_into(
        &browser,
        "data.title",
        "Officials apply the outreach lessons",
    )
    .await;
    set_field(&browser, "occurred_on", "2025-06-01").await;
    let event_id = value_of(&browser, "event_id").await;

    service.terminate();
    submit_form(&browser).await;
    let waiting = eventually(20, async || {
        let text = browser
            .find(Locator::Id("outbox"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("1 submission is waiting to be sent")
            .then_some(text)
    })
    .await;
    assert!(!waiting.is_empty());
    // The form is free for another report, with an id of its own: one the service will refuse
    // (an expected stage of another track), kept too.
    let second_id = value_of(&browser, "event_id").await;
    assert_ne!(second_id, event_id, "a new id for the next report");
    type_into(&browser, "outcome_id", "outreach").await;
    click(&browser, Locator::Id("type-practice.routine")).await;
    set_field(&browser, "occurred_on", "2025-07-01").await;
    set_field(&browser, "data.expected.stage", "ratified").await;
    set_field(&browser, "data.expected.by", "2027-01-01").await;
    submit_form(&browser).await;
    eventually(20, async || {
        let text = browser
            .find(Locator::Id("outbox"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("2 submissions are waiting to be sent")
            .then_some(())
    })
    .await;

    service.restart();
    eventually(30, async || {
        let response = client().get(service.url("/healthz")).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    // A restart ends the sessions: sign in again; the page then sends what waits.
    sign_in_at(&browser, &service, "/", "fo-token").await;
    wait_for_path(&browser, "/").await;
    eventually(40, async || {
        (times_recorded(&service, "MIEUX-TH-2014-01", &event_id).await == 1).then_some(())
    })
    .await;
    // The one refused is shown with the service's error, kept until dismissed.
    let refused = eventually(20, async || {
        let text = browser
            .find(Locator::Id("outbox"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains(
            "A kept submission (practice: routine, outreach, MIEUX-TH-2014-01) was refused",
        )
        .then_some(text)
    })
    .await;
    assert!(refused.contains("(expected_stage_invalid)"), "{refused}");
    assert!(
        !refused.contains("waiting"),
        "nothing else waits: {refused}"
    );
    screenshot(&browser, "outbox.png").await;
    browser.refresh().await.unwrap();
    let still = eventually(10, async || {
        let text = browser
            .find(Locator::Id("outbox"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("refused").then_some(text)
    })
    .await;
    assert!(
        still.contains("(expected_stage_invalid)"),
        "kept across pages: {still}"
    );
    click(&browser, Locator::Css("#outbox button")).await;
    eventually(10, async || {
        let shown = browser
            .find(Locator::Id("outbox"))
            .await
            .ok()?
            .is_displayed()
            .await
            .ok()?;
        (!shown).then_some(())
    })
    .await;
    assert_eq!(
        times_recorded(&service, "MIEUX-TH-2014-01", &second_id).await,
        0
    );
    browser.refresh().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        times_recorded(&service, "MIEUX-TH-2014-01", &event_id).await,
        1,
        "exactly once"
    );
    browser.close().await.unwrap();
}
