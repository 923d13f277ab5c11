//! The pages over HTTP (CONTRACT.md §4.2, §4.3): sign-in, sessions, the cookie's attributes,
//! CSRF, what each role sees, and titles shown as text. Real binary, real store.

mod common;

use common::*;
use serde_json::json;

fn config(dir: &std::path::Path) -> String {
    principals_config(dir, "")
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
    admin_posts(service, json!([thai, thai_outcome, lao])).await;
}

#[tokio::test]
async fn a_page_without_a_session_sends_the_browser_to_sign_in_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let response = page_client()
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
    let wrong = page_client()
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
    let right = page_client()
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
    let forged = page_client()
        .post(service.url("/login"))
        .header("Origin", "http://evil.example")
        .form(&[("token", "fo-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get("set-cookie").is_none());
    // Only this service's paths after sign-in.
    let away = page_client()
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
    let posted = page_client()
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
    let review = api_review(&service).await;
    let cookie = sign_in(&service, "admin-token").await;
    // Every page that shows an Action's or an outcome's title (a payload's on `/rejections`:
    // `the_rejections_page_shows_what_nats_publishers_sent_as_text`).
    let pages = [
        "/".to_owned(),
        format!("/actions/{THAI}"),
        format!("/actions/{THAI}?as_of=2019-01-01"),
        format!("/actions/{THAI}/compare?a_as_of=2018-01-01"),
        "/reviews".to_owned(),
        format!("/reviews/{review}"),
        "/rejections".to_owned(),
        "/login".to_owned(),
    ];
    for path in &pages {
        let (status, html) = page(&service, path, &cookie).await;
        assert_eq!(status, 200, "{path}");
        // The one script is the service's own outbox; a title's never becomes one.
        assert_eq!(
            html.matches("<script").count(),
            1,
            "{path}: a title became markup:\n{html}"
        );
        assert!(
            html.contains("<script src=\"/outbox.js\" defer></script>"),
            "{path}"
        );
        assert!(
            !html.contains("<b>"),
            "{path}: a title became markup:\n{html}"
        );
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
    // …and each shows the title, as text.
    let shown = [
        (
            "/",
            "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; Study visit",
        ),
        (&pages[1], "&#60;b&#62;Protocol&#60;/b&#62; revised"),
        (&pages[3], "&#60;b&#62;Protocol&#60;/b&#62; revised"),
        (
            &pages[5],
            "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; Study visit",
        ),
    ];
    for (path, text) in shown {
        let (_, html) = page(&service, path, &cookie).await;
        assert!(
            html.contains(text),
            "{path} shows {text:?} as text:\n{html}"
        );
    }
    let (_, action) = page(&service, &format!("/actions/{THAI}"), &cookie).await;
    // Words, not codes.
    assert!(
        action.contains("in progress") && action.contains("adopted by 31 May 2019 (stated)"),
        "{action}"
    );
    assert!(
        !action.contains("in_progress<") && !action.contains("Explicit"),
        "{action}"
    );
    let css = page_client()
        .get(service.url("/style.css"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!css.contains("http") && !css.contains("@import"), "{css}");
    let script = page_client()
        .get(service.url("/outbox.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let script = script.text().await.unwrap();
    assert!(
        !script.contains("http:") && !script.contains("https:") && !script.contains("//cdn"),
        "the outbox talks to this origin only"
    );
    assert!(script.contains("fetch(\"/submit\""), "{script}");
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
        let refused = page_client()
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
    let out = page_client()
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
    admin_posts(&service, json!([later, withdrawn, retraction])).await;
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

/// Runs a review as the evaluator over the API: its id.
async fn api_review(service: &Service) -> String {
    let response = page_client()
        .post(service.url("/v1/reviews"))
        .bearer_auth("eval-token")
        .json(&json!({"as_of": "2019-06-30"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let report: serde_json::Value = response.json().await.unwrap();
    report["review_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_page_for_every_role_is_shown_sent_to_sign_in_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let review = api_review(&service).await;
    let pages = [
        "/".to_owned(),
        format!("/actions/{THAI}"),
        format!("/actions/{THAI}/compare?a_as_of=2019-01-01"),
        format!("/actions/{LAO}"),
        format!("/actions/{LAO}/compare"),
        "/reviews".to_owned(),
        format!("/reviews/{review}"),
        "/rejections".to_owned(),
        "/submit".to_owned(),
        format!("/submit?form=report&action_id={THAI}"),
        format!("/submit?form=verify&action_id={THAI}"),
        format!("/submit?form=report&action_id={LAO}"),
    ];
    // For the Thai field office, the evaluator and the admin, in the order of `pages`: a
    // field office reports on its own country's Actions, an evaluator verifies and reports
    // no stage.
    let expected: [(&str, [u16; 12]); 3] = [
        (
            "fo-token",
            [200, 200, 200, 403, 403, 403, 403, 403, 200, 200, 403, 403],
        ),
        (
            "eval-token",
            [200, 200, 200, 200, 200, 200, 200, 200, 200, 403, 200, 403],
        ),
        ("admin-token", [200; 12]),
    ];
    for path in &pages {
        let response = page_client().get(service.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{path} without a session");
        let to = response.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/login?next=/"), "{path}: {to}");
    }
    for (token, statuses) in expected {
        let cookie = sign_in(&service, token).await;
        for (path, status) in pages.iter().zip(statuses) {
            let (got, html) = page(&service, path, &cookie).await;
            assert_eq!(got, status, "{token} {path}: {html}");
            assert!(
                html.starts_with("<!doctype html>"),
                "{token} {path}: a page, not JSON"
            );
            if status == 403 {
                assert!(html.contains("You may not open this"), "{html}");
                // Who is signed in, and the way to sign out, as on every page.
                assert!(
                    html.contains("Signed in as") && html.contains("action=\"/logout\""),
                    "{html}"
                );
                assert!(!html.contains("MIEUX-LA") || path.contains(LAO), "{html}");
            }
        }
    }
    let cookie = sign_in(&service, "eval-token").await;
    let (status, html) = page(&service, "/actions/MIEUX-NO-0000-00", &cookie).await;
    assert_eq!(status, 404);
    assert!(html.contains("Not found"), "{html}");
    assert!(html.contains("Signed in as eval (evaluator)"), "{html}");
}

#[tokio::test]
async fn the_review_form_runs_a_review_only_with_the_session_s_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let cookie = sign_in(&service, "eval-token").await;
    let (_, list) = page(&service, "/reviews", &cookie).await;
    let csrf = csrf_of(&list);
    let other = csrf_of(
        &page(
            &service,
            "/reviews",
            &sign_in(&service, "admin-token").await,
        )
        .await
        .1,
    );
    let post = |form: Vec<(&'static str, String)>| {
        let cookie = cookie.clone();
        let url = service.url("/reviews");
        async move {
            let response = page_client()
                .post(url)
                .header("Cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            (status, location, response.text().await.unwrap())
        }
    };
    for form in [
        vec![("as_of", "2019-06-30".to_owned())],
        vec![("as_of", "2019-06-30".to_owned()), ("csrf", other.clone())],
        vec![("as_of", "2019-06-30".to_owned()), ("csrf", String::new())],
    ] {
        let (status, _, html) = post(form).await;
        assert_eq!(status, 403, "{html}");
        assert!(html.contains("csrf"), "{html}");
    }
    // Posted by hand without a session (a bearer token, no cookie): refused too.
    let response = page_client()
        .post(service.url("/reviews"))
        .bearer_auth("eval-token")
        .form(&[("csrf", csrf.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let reviews = |token: &'static str| {
        let url = service.url("/v1/reviews");
        async move {
            let response = page_client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = response.json().await.unwrap();
            body["reviews"].as_array().unwrap().len()
        }
    };
    assert_eq!(reviews("eval-token").await, 0, "nothing was run");

    let (status, _, html) = post(vec![
        ("csrf", csrf.clone()),
        ("as_of", "30/06/2019".to_owned()),
        ("country", "Thailand".to_owned()),
    ])
    .await;
    assert_eq!(status, 400);
    assert!(
        html.contains("as_of must be a date") && html.contains("is not a country code"),
        "{html}"
    );
    assert!(
        html.contains("value=\"Thailand\""),
        "what was typed is kept: {html}"
    );
    assert_eq!(reviews("eval-token").await, 0);

    let (status, location, _) = post(vec![
        ("csrf", csrf.clone()),
        ("as_of", "2019-06-30".to_owned()),
        ("country", "TH".to_owned()),
    ])
    .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(location.starts_with("/reviews/review-"), "{location}");
    let (status, report) = page(&service, &location, &cookie).await;
    assert_eq!(status, 200);
    assert!(
        report.contains("Status on 30 June 2019") && report.contains("TH"),
        "{report}"
    );
    assert!(
        report.contains("This is the first review of TH"),
        "{report}"
    );
    assert!(
        report.contains("&#60;b&#62;Protocol&#60;/b&#62; revised")
            && !report.contains("<b>Protocol"),
        "titles are text: {report}"
    );
    assert_eq!(reviews("eval-token").await, 1);

    // A field office may not run one, even with its own session's token.
    let fo = sign_in(&service, "fo-token").await;
    let fo_csrf = csrf_of(&page(&service, "/", &fo).await.1);
    let response = page_client()
        .post(service.url("/reviews"))
        .header("Cookie", fo)
        .form(&[("csrf", fo_csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(reviews("eval-token").await, 1);
}

#[tokio::test]
async fn a_session_expires_after_its_hours_by_the_server_s_clock() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = principals_config(
        dir.path(),
        "[server]\nsession_hours = 2\ncookie_secure = false\n\n",
    );
    let service = Service::start_in(data.path(), &["--config", &config]);
    seed(&service).await;
    let cookie = sign_in(&service, "eval-token").await;
    std::fs::write(data.path().join("fault-clock-ahead-s"), "7100").unwrap();
    assert_eq!(
        page(&service, "/", &cookie).await.0,
        200,
        "still live 1 h 58 min on"
    );
    std::fs::write(data.path().join("fault-clock-ahead-s"), "7201").unwrap();
    let response = page_client()
        .get(service.url("/reviews"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "expired after 2 hours");
    assert_eq!(response.headers()["location"], "/login?next=/reviews");
    std::fs::write(data.path().join("fault-clock-ahead-s"), "0").unwrap();
    assert_eq!(
        page(&service, "/", &cookie).await.0,
        303,
        "an expired session is forgotten, not revived"
    );
}

#[tokio::test]
async fn the_compare_and_rejections_pages_show_changes_and_payloads_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let adopted = track(
        THAI,
        "TH",
        "vot-protocol",
        "legislation.adopted",
        "2019-04-01",
    );
    admin_posts(&service, json!([adopted])).await;
    let cookie = sign_in(&service, "fo-token").await;
    let (status, html) = page(
        &service,
        &format!("/actions/{THAI}/compare?a_as_of=2019-01-01"),
        &cookie,
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Left: as of 1 January 2019"), "{html}");
    assert!(html.contains("<td>pending</td><td>adopted</td>"), "{html}");
    assert!(
        html.contains("&#60;b&#62;Protocol&#60;/b&#62; revised"),
        "{html}"
    );
    assert!(html.contains("One year ago"), "{html}");
    let (status, html) = page(
        &service,
        &format!("/actions/{THAI}/compare?a_as_of=2019-13-01&b_until_seq=x"),
        &cookie,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        html.contains("id=\"a_as_of-error\"") && html.contains("id=\"b_until_seq-error\""),
        "{html}"
    );
    assert!(
        html.contains("Nothing is compared until every field above reads")
            && !html.contains("Left: now"),
        "no comparison of now against now under the errors: {html}"
    );

    let eval = sign_in(&service, "eval-token").await;
    let (status, html) = page(&service, "/rejections", &eval).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Nothing has been rejected"), "{html}");
    let (status, html) = page(&service, "/rejections?before=x", &eval).await;
    assert_eq!(status, 400);
    assert!(html.contains("before must be a whole number"), "{html}");
}

#[tokio::test]
async fn the_rejections_page_shows_what_nats_publishers_sent_as_text() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let before = format!("[nats]\nurl = \"{}\"\n\n", nats.url());
    let service = Service::start(&["--config", &principals_config(dir.path(), &before)]);
    eventually(30, async || {
        let status = page_client()
            .get(service.url("/readyz"))
            .send()
            .await
            .ok()?
            .status();
        (status == 200).then_some(())
    })
    .await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let payload = br#"{"event_id": "<script>alert(1)</script>", "type": "legislation.pending"}"#;
    js.publish("impact.events.TH.MIEUX-TH-2014-01", payload.to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let eval = sign_in(&service, "eval-token").await;
    let html = eventually(30, async || {
        let (status, html) = page(&service, "/rejections", &eval).await;
        (status == 200 && html.contains("#1 ")).then_some(html)
    })
    .await;
    assert!(html.contains("a field is missing or wrong"), "{html}");
    assert!(html.contains("straight to NATS"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;") && !html.contains("<script>"),
        "the payload is text: {html}"
    );
    let fo = sign_in(&service, "fo-token").await;
    assert_eq!(page(&service, "/rejections", &fo).await.0, 403);
}

#[tokio::test]
async fn a_long_action_list_is_paged_and_every_page_link_keeps_the_filters() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    // 230 Thai Actions and one Lao one: the field office's list is 230 long.
    let mut batch: Vec<serde_json::Value> = (0..230)
        .map(|n| registered(&format!("MIEUX-TH-2015-{n:03}"), "TH"))
        .collect();
    batch.push(registered(LAO, "LA"));
    admin_posts(&service, json!(batch)).await;
    let cookie = sign_in(&service, "fo-token").await;
    let rows = |html: &str| {
        html.matches("<td class=\"nowrap\"><a href=\"/actions/")
            .count()
    };

    let (status, first) = page(&service, "/?as_of=2020-01-01", &cookie).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&first), 100);
    assert!(first.contains("230 Actions"), "{first}");
    assert!(
        first.contains("Actions 1–100 of 230 · page 1 of 3"),
        "{first}"
    );
    assert!(first.contains("MIEUX-TH-2015-000") && !first.contains("MIEUX-TH-2015-100"));
    assert!(!first.contains(LAO), "no other country on any page");
    // The Actions' links and the next page's keep the point in time.
    assert!(first.contains("href=\"/actions/MIEUX-TH-2015-000?as_of=2020-01-01\""));
    assert!(
        first.contains("href=\"/?as_of=2020-01-01&#38;page=2\" rel=\"next\""),
        "{first}"
    );
    assert!(!first.contains("rel=\"prev\""));

    let (status, last) = page(&service, "/?as_of=2020-01-01&page=3", &cookie).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&last), 30);
    assert!(
        last.contains("Actions 201–230 of 230 · page 3 of 3"),
        "{last}"
    );
    assert!(last.contains("href=\"/?as_of=2020-01-01&#38;page=2\" rel=\"prev\""));
    assert!(!last.contains("rel=\"next\""));
    // The charts and counts are of every matching Action, not of the page.
    assert!(last.contains("230 Actions"));

    let (status, past) = page(&service, "/?page=9", &cookie).await;
    assert_eq!(status, 400);
    assert!(
        past.contains("there is no page 9: 230 Actions fill 3 pages"),
        "{past}"
    );
    assert_eq!(rows(&past), 30, "the last page is shown under the error");
    for bad in ["/?page=0", "/?page=x", "/?page=-1"] {
        let (status, html) = page(&service, bad, &cookie).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            html.contains("page must be a whole number from 1"),
            "{bad}: {html}"
        );
        assert_eq!(rows(&html), 100, "{bad}: the first page under the error");
    }
    // A filter that leaves one page: no paging shown.
    let (status, one) = page(&service, "/?flag=overdue", &cookie).await;
    assert_eq!(status, 200);
    assert!(!one.contains("Pages of the Action table"));
}

#[tokio::test]
async fn an_action_page_says_what_the_action_contributed_to_each_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    let mut early = track(THAI, "TH", "network", "network.created", "2015-01-10");
    early["data"] = json!({"contribution": {"level": "indirect", "confidence": "low"}});
    let mut later = track(THAI, "TH", "network", "network.formalised", "2016-02-01");
    later["data"] = json!({"contribution": {"level": "none_evident", "confidence": "high", "note": "<i>others</i> did it"}});
    let silent = track(
        THAI,
        "TH",
        "focal-points",
        "mechanism.proposed",
        "2016-03-01",
    );
    admin_posts(
        &service,
        json!([registered(THAI, "TH"), early, later, silent]),
    )
    .await;
    let cookie = sign_in(&service, "fo-token").await;
    let (_, now) = page(&service, &format!("/actions/{THAI}"), &cookie).await;
    assert!(
        now.contains("contribution: none evident, high confidence — <q>&#60;i&#62;others&#60;/i&#62; did it</q>"),
        "{now}"
    );
    assert!(now.contains("contribution: not stated"), "{now}");
    // Before the later report, the earlier one speaks.
    let (_, then) = page(
        &service,
        &format!("/actions/{THAI}?as_of=2015-12-31"),
        &cookie,
    )
    .await;
    assert!(
        then.contains("contribution: indirect, low confidence"),
        "{then}"
    );
}

#[tokio::test]
async fn a_kept_action_page_is_drawn_again_when_its_record_changes_and_keeps_its_country() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let admin = sign_in(&service, "admin-token").await;
    let path = format!("/actions/{THAI}");
    let (_, first) = page(&service, &path, &admin).await;
    let (_, again) = page(&service, &path, &admin).await;
    assert_eq!(first, again, "the same record draws the same page");
    assert!(first.contains("pending <span class=\"mark\">(now)</span>"));
    // The page drawn for the admin (and kept) is refused to another country's field office…
    let (status, _) = page(&service, &format!("/actions/{LAO}"), &admin).await;
    assert_eq!(status, 200);
    let thai_office = sign_in(&service, "fo-token").await;
    let (status, html) = page(&service, &format!("/actions/{LAO}"), &thai_office).await;
    assert_eq!(status, 403, "{html}");
    assert!(
        !html.contains("Study visit"),
        "nothing of the Action: {html}"
    );
    // …and a new event draws it again.
    let adopted = track(
        THAI,
        "TH",
        "vot-protocol",
        "legislation.adopted",
        "2019-04-01",
    );
    admin_posts(&service, json!([adopted])).await;
    let (_, now) = page(&service, &path, &admin).await;
    assert!(
        now.contains("adopted <span class=\"mark\">(now)</span>"),
        "{now}"
    );
    assert!(now.contains("3 events"), "{now}");
    // The same record at another point in time is another drawing.
    let (_, then) = page(&service, &format!("{path}?as_of=2019-01-01"), &admin).await;
    assert!(
        then.contains("pending <span class=\"mark\">(now)</span>"),
        "{then}"
    );
}

#[tokio::test]
async fn the_time_travel_forms_offer_the_reviews_the_caller_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    seed(&service).await;
    let fo = sign_in(&service, "fo-token").await;
    let path = format!("/actions/{THAI}");
    let (_, before) = page(&service, &path, &fo).await;
    assert!(!before.contains("As known at a review"), "no review yet");
    api_review(&service).await;
    let lao_review = page_client()
        .post(service.url("/v1/reviews"))
        .bearer_auth("eval-token")
        .json(&json!({"as_of": "2019-07-31", "country": "LA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(lao_review.status(), 201);
    // The review of all countries is offered at the log position it read (the seed's 3
    // events); the Lao one is not offered to the Thai field office, and is to an evaluator.
    let offered = "<option value=\"3\">the review as of 30 June 2019 (all countries), log position 3</option>";
    for path in ["/", path.as_str()] {
        let (_, html) = page(&service, path, &fo).await;
        assert!(html.contains(offered), "{path}: {html}");
        assert!(!html.contains("(LA)"), "{path}: {html}");
    }
    let eval = sign_in(&service, "eval-token").await;
    for path in ["/", "/reviews", path.as_str()] {
        let (_, html) = page(&service, path, &eval).await;
        assert!(
            html.contains("the review as of 31 July 2019 (LA)"),
            "{path}: {html}"
        );
    }
    // An event after the review: "as known at the review" does not show it.
    let adopted = track(
        THAI,
        "TH",
        "vot-protocol",
        "legislation.adopted",
        "2019-04-01",
    );
    admin_posts(&service, json!([adopted])).await;
    let (_, then) = page(&service, &format!("{path}?until_seq=3"), &fo).await;
    assert!(
        then.contains("<option value=\"3\" selected>the review as of 30 June 2019"),
        "{then}"
    );
    assert!(
        then.contains("pending <span class=\"mark\">(now)</span>"),
        "{then}"
    );
    let (_, now) = page(&service, &path, &fo).await;
    assert!(
        now.contains("adopted <span class=\"mark\">(now)</span>"),
        "{now}"
    );
    // A log position no review names is offered as itself, selected.
    let (_, other) = page(&service, &format!("{path}?until_seq=2"), &fo).await;
    assert!(
        other.contains("<option value=\"2\" selected>log position 2</option>"),
        "{other}"
    );
}
