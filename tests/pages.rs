//! The pages over HTTP (CONTRACT.md §4.2, §4.3): sign-in, sessions, the cookie's attributes,
//! CSRF, what each role sees, and titles shown as text. Real binary, real store.

mod common;

use common::*;
use serde_json::json;

fn config(dir: &std::path::Path) -> String {
    principals_config(dir, "")
}

/// A client that does not follow redirects, so each `303` can be checked.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

const THAI: &str = "MIEUX-TH-2014-01";
const LAO: &str = "MIEUX-LA-2019-01";

async fn seed(service: &Service) {
    let mut thai = registered(THAI, "TH");
    thai["data"]["title"] = json!("<script>alert('x')</script> Study visit");
    let mut thai_outcome = track(
        THAI,
        "TH",
        "vot-protocol",
        "legislation.pending",
        "2018-11-20",
    );
    thai_outcome["data"] = json!({"title": "<b>Protocol</b> revised", "expected": {"stage": "adopted", "by": "2019-05-31"}});
    let lao = registered(LAO, "LA");
    let response = browser()
        .post(service.url("/v1/events?wait=true"))
        .bearer_auth("admin-token")
        .json(&json!([thai, thai_outcome, lao]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
}

/// Signs in with `token`: the session cookie's `name=value`.
async fn sign_in(service: &Service, token: &str) -> String {
    let response = browser()
        .post(service.url("/login"))
        .form(&[("token", token), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(service: &Service, path: &str, cookie: &str) -> (u16, String) {
    let response = browser()
        .get(service.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The page's CSRF token (the sign-out form's hidden field).
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn a_page_without_a_session_sends_the_browser_to_sign_in_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let response = browser()
        .get(service.url(&format!("/actions/{THAI}?as_of=2019-01-01")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("/login?next=/actions/{THAI}%3Fas_of%3D2019-01-01").as_str()
    );
    let (status, form) = page(&service, "/login?next=/actions/X", "").await;
    assert_eq!(status, 200);
    assert!(
        form.contains("name=\"token\"") && form.contains("value=\"/actions/X\""),
        "{form}"
    );

    // A wrong token: 401, the form again, no cookie.
    let wrong = browser()
        .post(service.url("/login"))
        .form(&[("token", "guess"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("not one this service knows"));

    // The right one: 303 to where the browser was going, and the session cookie.
    let right = browser()
        .post(service.url("/login"))
        .form(&[("token", "fo-token"), ("next", "/actions/X")])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()["location"], "/actions/X");
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "impact_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Secure",
        "Max-Age=43200",
    ] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing from {cookie}"
        );
    }
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("impact_session=");
    assert!(value.len() >= 32, "at least 128 random bits: {value}");
    assert!(!cookie.contains("fo-token"), "the cookie is not the token");

    // Another site's page cannot sign the browser in.
    let forged = browser()
        .post(service.url("/login"))
        .header("Origin", "http://evil.example")
        .form(&[("token", "fo-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get("set-cookie").is_none());
    // Only this service's paths after sign-in.
    let away = browser()
        .post(service.url("/login"))
        .form(&[("token", "fo-token"), ("next", "https://evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(away.headers()["location"], "/");
}

#[tokio::test]
async fn a_field_office_sees_only_its_country_and_the_cookie_never_posts() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let cookie = sign_in(&service, "fo-token").await;
    let (status, index) = page(&service, "/", &cookie).await;
    assert_eq!(status, 200);
    assert!(index.contains(THAI), "{index}");
    assert!(
        !index.contains(LAO) && !index.contains(">LA<"),
        "no Lao Action in a Thai page"
    );
    assert!(
        index.contains("Signed in as fo-bangkok (field office)"),
        "{index}"
    );
    let (status, _) = page(&service, &format!("/actions/{LAO}"), &cookie).await;
    assert_eq!(status, 403);

    // /v1 reads take the cookie; /v1 writes never do.
    let (status, list) = page(&service, "/v1/actions", &cookie).await;
    assert_eq!(status, 200);
    assert!(list.contains(THAI) && !list.contains(LAO), "{list}");
    let posted = browser()
        .post(service.url("/v1/events"))
        .header("Cookie", &cookie)
        .json(&registered("MIEUX-TH-2020-01", "TH"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 401);
}

#[tokio::test]
async fn titles_are_text_and_no_page_names_another_origin() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let cookie = sign_in(&service, "admin-token").await;
    for path in ["/", &format!("/actions/{THAI}"), "/login"] {
        let (status, html) = page(&service, path, &cookie).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !html.contains("<script"),
            "{path}: a title became markup:\n{html}"
        );
        assert!(!html.contains("<b>Protocol"), "{path}");
        for attribute in [
            "src=\"http",
            "href=\"http",
            "action=\"http",
            "src=\"//",
            "href=\"//",
            "url(http",
            "@import",
        ] {
            assert!(
                !html.contains(attribute),
                "{path} names another origin ({attribute})"
            );
        }
    }
    let (_, action) = page(&service, &format!("/actions/{THAI}"), &cookie).await;
    assert!(
        action.contains("&#60;script&#62;") || action.contains("&lt;script&gt;"),
        "the title is shown, as text: {action}"
    );
    // Words, not codes.
    assert!(
        action.contains("in progress") && action.contains("adopted by 31 May 2019 (stated)"),
        "{action}"
    );
    assert!(
        !action.contains("in_progress<") && !action.contains("Explicit"),
        "{action}"
    );
    let css = browser()
        .get(service.url("/style.css"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!css.contains("http") && !css.contains("@import"), "{css}");
}

#[tokio::test]
async fn signing_out_takes_the_session_s_csrf_token_and_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    let cookie = sign_in(&service, "eval-token").await;
    let (_, html) = page(&service, "/", &cookie).await;
    let csrf = csrf_of(&html);
    let other = sign_in(&service, "eval-token").await;
    let (_, other_html) = page(&service, "/", &other).await;
    let other_csrf = csrf_of(&other_html);
    assert_ne!(csrf, other_csrf);
    for (token, why) in [("", "none"), (other_csrf.as_str(), "another session's")] {
        let refused = browser()
            .post(service.url("/logout"))
            .header("Cookie", &cookie)
            .form(&[("csrf", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{why}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf", "{why}");
        assert_eq!(
            page(&service, "/", &cookie).await.0,
            200,
            "{why}: the session goes on"
        );
    }
    let out = browser()
        .post(service.url("/logout"))
        .header("Cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/login");
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        page(&service, "/", &cookie).await.0,
        303,
        "the session ended"
    );
    assert_eq!(page(&service, "/", &other).await.0, 200, "only that one");
}

#[tokio::test]
async fn the_list_page_filters_and_shows_a_bad_filter_beside_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let admin = sign_in(&service, "admin-token").await;
    let (status, all) = page(&service, "/", &admin).await;
    assert_eq!(status, 200);
    assert!(all.contains(THAI) && all.contains(LAO));
    assert!(all.contains("Actions by country") && all.contains("Outcomes by state"));
    let (_, lao_only) = page(&service, "/?country=LA&state=&flag=", &admin).await;
    assert!(
        lao_only.contains(LAO) && !lao_only.contains(&format!(">{THAI}<")),
        "{lao_only}"
    );
    assert!(
        lao_only.contains("<option value=\"LA\" selected>"),
        "the form keeps the choice"
    );
    // The time-travel filters go with every link to an Action.
    let (_, then) = page(&service, "/?as_of=2019-01-01", &admin).await;
    assert!(
        then.contains(&format!("/actions/{THAI}?as_of=2019-01-01")),
        "{then}"
    );
    // A malformed filter: the page again, 400, the error beside its field, never a 500.
    let (status, bad) = page(&service, "/?as_of=2019-13-45&state=stuck&asof=x", &admin).await;
    assert_eq!(status, 400);
    assert!(bad.contains("as_of must be a date YYYY-MM-DD"), "{bad}");
    assert!(bad.contains("unknown state"), "{bad}");
    assert!(bad.contains("unknown query parameter"), "{bad}");
    assert!(
        bad.contains("<form class=\"filters\""),
        "the form is there to correct it"
    );

    // The Thai field office's charts count Thai Actions only.
    let thai = sign_in(&service, "fo-token").await;
    let (_, index) = page(&service, "/", &thai).await;
    assert!(!index.contains(">LA<"), "no Lao bar or option: {index}");
}

#[tokio::test]
async fn an_action_page_travels_in_time_and_marks_what_was_retracted() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let later = track(
        THAI,
        "TH",
        "vot-protocol",
        "legislation.adopted",
        "2019-04-01",
    );
    let withdrawn = track(
        THAI,
        "TH",
        "focal-points",
        "mechanism.proposed",
        "2019-02-01",
    );
    let retraction = event(
        "event.retracted",
        THAI,
        "TH",
        None,
        "2019-03-01",
        json!({"target_event_id": withdrawn["event_id"], "reason": "reported twice"}),
    );
    let response = browser()
        .post(service.url("/v1/events?wait=true"))
        .bearer_auth("admin-token")
        .json(&json!([later, withdrawn, retraction]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let cookie = sign_in(&service, "fo-token").await;
    let (_, now) = page(&service, &format!("/actions/{THAI}"), &cookie).await;
    assert!(
        now.contains("adopted <span class=\"mark\">(now)</span>"),
        "{now}"
    );
    assert!(
        now.contains("(retracted)"),
        "the withdrawn event is marked in the history"
    );
    assert!(
        now.contains("<h2>Timeline</h2>") && now.contains("<circle"),
        "{now}"
    );
    let (status, then) = page(
        &service,
        &format!("/actions/{THAI}?as_of=2019-01-01"),
        &cookie,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        then.contains("pending <span class=\"mark\">(now)</span>"),
        "{then}"
    );
    assert!(then.contains("as of 1 January 2019"), "{then}");
    let (status, bad) = page(&service, &format!("/actions/{THAI}?as_of=someday"), &cookie).await;
    assert_eq!(status, 400);
    assert!(
        bad.contains("as_of must be a date") && bad.contains("<form"),
        "{bad}"
    );
    assert!(
        page(&service, &format!("/actions/{THAI}"), &cookie)
            .await
            .1
            .len()
            < 100 * 1024
    );
}
