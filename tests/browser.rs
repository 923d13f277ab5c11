//! The pages in a real headless Chromium, driven over WebDriver (Debian's chromium and
//! chromium-driver, which `scripts/test` installs): sign in as the Thai field office, see only
//! Thai Actions, open one, sign out. Screenshots of `/` and of an Action page are written to
//! `target/screenshots/` (README.md) for a person to look at.

mod common;

use common::*;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use sha2::{Digest, Sha256};
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

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_office_signs_in_sees_only_its_country_and_signs_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("impact.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ncookie_secure = false\n[review]\nschedule = \"off\"\n\n\
             [[principals]]\nname = \"fo-bangkok\"\nrole = \"field_office\"\ncountries = [\"TH\"]\ntoken_sha256 = \"{}\"\n\n\
             [[principals]]\nname = \"root\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
            sha256_hex("fo-token"),
            sha256_hex("admin-token")
        ),
    )
    .unwrap();
    let service = Service::start(&["--config", config.to_str().unwrap(), "--demo"]);
    // The demo data loads through the bus at start: wait for the Lao Action to be there.
    let http = client();
    eventually(30, async || {
        let response = http
            .get(service.url("/v1/actions/MIEUX-LA-2016-02"))
            .bearer_auth("admin-token")
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;

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
    browser
        .find(Locator::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually(10, async || {
        (browser.current_url().await.ok()?.path() == "/").then_some(())
    })
    .await;
    let text = browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("MIEUX-TH-2014-01"), "{text}");
    for other in ["MIEUX-LA-2016-02", "MIEUX-KG-2018-06", "MIEUX-PH-2015-03"] {
        assert!(
            !text.contains(other),
            "{other} shown to the Thai field office"
        );
    }
    let header = browser
        .find(Locator::Css("header"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        header.contains("Signed in as fo-bangkok (field office)"),
        "{header}"
    );
    std::fs::write(
        screenshot_dir().join("index.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    browser
        .find(Locator::LinkText("MIEUX-TH-2014-01"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let heading = browser
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(heading.contains("Thai and EU authorities"), "{heading}");
    let page = browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("in progress") && page.contains("(stated)"),
        "{page}"
    );
    std::fs::write(
        screenshot_dir().join("action.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    // The time-travel control: the Action as it stood on 1 January 2016.
    let as_of = browser.find(Locator::Id("as_of")).await.unwrap();
    as_of.send_keys("01012016").await.unwrap();
    browser
        .find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually(10, async || {
        let url = browser.current_url().await.ok()?;
        url.query()?.contains("as_of=2016-01-01").then_some(())
    })
    .await;
    let then = browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(then.contains("as of 1 January 2016"), "{then}");
    assert!(
        !then.contains("vot-protocol"),
        "the protocol outcome came later: {then}"
    );
    assert!(then.contains("established (now)"), "{then}");

    // Another country's Action, asked for by address: refused.
    browser
        .goto(&service.url("/actions/MIEUX-LA-2016-02"))
        .await
        .unwrap();
    let refused = browser.source().await.unwrap();
    assert!(
        refused.contains("forbidden") && !refused.contains("migration data"),
        "{refused}"
    );

    browser.goto(&service.url("/")).await.unwrap();
    browser
        .find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
