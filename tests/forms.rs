//! The follow-up forms over HTTP (CONTRACT.md §4.4): what each builds, that it is recorded once
//! however often it is sent, each rejection shown by its field with the contract's code, CSRF,
//! and the role and country rules of `POST /v1/events`. Real binary, real store.

mod common;

use common::*;
use impact::domain::tracks::Track;
use serde_json::{json, Value};

const THAI: &str = "MIEUX-TH-2014-01";
const LAO: &str = "MIEUX-LA-2019-01";

fn config(dir: &std::path::Path) -> String {
    principals_config(dir, "")
}

/// A form's fields as posted.
type Fields = Vec<(&'static str, String)>;

/// The value of the hidden or text input `name` on a page.
fn input_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// The answer to a form post: status, `Location` (if any) and the page.
async fn post_form(
    service: &Service,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let response = page_client()
        .post(service.url("/submit"))
        .header("Cookie", cookie)
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map_or(String::new(), |l| l.to_str().unwrap().to_owned());
    (status, location, response.text().await.unwrap())
}

/// The form page at `path`: its event_id and CSRF token.
async fn form(service: &Service, cookie: &str, path: &str) -> (String, String, String) {
    let (status, html) = page(service, path, cookie).await;
    assert_eq!(status, 200, "{path}: {html}");
    (input_value(&html, "event_id"), csrf_of(&html), html)
}

/// The Thai Action's registration and its protocol, pending since 20 November 2018.
fn thai_with_a_protocol() -> Vec<Value> {
    vec![
        registered(THAI, "TH"),
        track(
            THAI,
            "TH",
            "vot-protocol",
            "legislation.pending",
            "2018-11-20",
        ),
    ]
}

async fn seed_lao(service: &Service) {
    admin_posts(service, json!([registered(LAO, "LA")])).await;
}

/// The Action's history as the admin reads it over the API.
async fn history(service: &Service, action: &str) -> Vec<Value> {
    let response = page_client()
        .get(service.url(&format!("/v1/actions/{action}/events")))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return Vec::new();
    }
    let body: Value = response.json().await.unwrap();
    body["events"].as_array().cloned().unwrap_or_default()
}

/// A field office registers an Action and reports a pending law with its expected adoption and
/// an evidence link; the same form sent twice is one event.
#[tokio::test]
async fn a_field_office_registers_and_reports_and_a_form_sent_twice_is_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    let fo = sign_in(&service, "fo-token").await;

    let (event_id, csrf, html) = form(&service, &fo, "/submit?form=register").await;
    assert!(
        html.contains("Country: <strong>TH</strong>"),
        "a single country is fixed: {html}"
    );
    let register = [
        ("csrf", csrf.as_str()),
        ("event_id", event_id.as_str()),
        ("form", "register"),
        ("type", "action.registered"),
        ("action_id", THAI),
        ("country", "TH"),
        ("occurred_on", "2014-03-01"),
        (
            "data.title",
            "Study visit on counter-trafficking cooperation",
        ),
        ("data.modality", "study_visit"),
        (
            "data.partner_institutions",
            "Department of Special Investigation\nRoyal Thai Police\n",
        ),
    ];
    let (status, location, _) = post_form(&service, &fo, &register).await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("/actions/{THAI}?recorded={event_id}"));
    let (_, action) = page(&service, &location, &fo).await;
    assert!(
        action.contains("Recorded: Action registered, 1 March 2014, log position 1."),
        "{action}"
    );

    let path = format!("/submit?form=report&action_id={THAI}&track=legislation");
    let (event_id, csrf, _) = form(&service, &fo, &path).await;
    let report = [
        ("csrf", csrf.as_str()),
        ("event_id", event_id.as_str()),
        ("form", "report"),
        ("track", "legislation"),
        ("action_id", THAI),
        ("country", "TH"),
        ("type", "legislation.pending"),
        ("outcome_id", "vot-protocol"),
        ("occurred_on", "2018-11-20"),
        ("data.title", "Protocol for victim protection revised"),
        ("data.significance", "high"),
        ("data.contribution.level", "substantial"),
        ("data.contribution.confidence", "medium"),
        ("data.expected.stage", "adopted"),
        ("data.expected.by", "2019-05-31"),
        ("evidence.0.title", "Follow-up meeting minutes"),
        ("evidence.0.url", "https://example.org/minutes.pdf"),
        ("evidence.1.title", ""),
        ("evidence.1.url", ""),
    ];
    let (status, location, _) = post_form(&service, &fo, &report).await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("/actions/{THAI}?recorded={event_id}"));
    // Sent again (a double click, a resend after a lost answer): one event, said so.
    let (status, again, _) = post_form(&service, &fo, &report).await;
    assert_eq!(status, 303);
    assert_eq!(again, format!("{location}&duplicate=true"));
    let (_, action) = page(&service, &again, &fo).await;
    assert!(
        action.contains("Recorded already: legislation: pending of vot-protocol, 20 November 2018, log position 2. Sending the form again did not record it twice."),
        "{action}"
    );
    assert!(
        action.contains("adopted by 31 May 2019 (stated)"),
        "{action}"
    );
    assert!(
        action.contains("substantial, medium confidence"),
        "{action}"
    );

    let events = history(&service, THAI).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let stored = &events[1];
    assert_eq!(stored["event_id"], event_id.as_str());
    assert_eq!(
        stored["reported_by"], "fo-bangkok",
        "the signed-in principal reports"
    );
    assert_eq!(stored["submitted_by"], "fo-bangkok");
    assert_eq!(
        stored["data"],
        json!({"title": "Protocol for victim protection revised", "significance": "high",
               "contribution": {"level": "substantial", "confidence": "medium"},
               "expected": {"stage": "adopted", "by": "2019-05-31"}})
    );
    assert_eq!(
        stored["evidence"],
        json!([{"title": "Follow-up meeting minutes", "url": "https://example.org/minutes.pdf"}])
    );
    assert_eq!(
        events[0]["data"]["partner_institutions"],
        json!(["Department of Special Investigation", "Royal Thai Police"])
    );
}

/// Every rejection a form can meet comes back as the form, filled in, the error by its field
/// with the contract's code, and nothing recorded.
#[tokio::test]
async fn each_rejection_is_shown_by_its_field_with_its_code_and_keeps_what_was_typed() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    admin_posts(
        &service,
        json!([thai_with_a_protocol(), vec![registered(LAO, "LA")]].concat()),
    )
    .await;
    let admin = sign_in(&service, "admin-token").await;
    let (_, csrf, _) = form(&service, &admin, "/submit?form=register").await;
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(2)).to_string();
    let report = |stage: &'static str, outcome: &'static str| {
        vec![
            ("form", "report".to_owned()),
            ("type", stage.to_owned()),
            ("action_id", THAI.to_owned()),
            ("country", "TH".to_owned()),
            ("outcome_id", outcome.to_owned()),
            ("occurred_on", "2019-01-10".to_owned()),
            ("data.title", "Typed by hand".to_owned()),
        ]
    };
    let with = |mut fields: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]| {
        for (name, value) in extra {
            fields.retain(|(n, _)| n != name);
            fields.push((name, value.to_string()));
        }
        fields
    };
    // (fields, the field the error is by, the code, the status)
    let cases: Vec<(Fields, &str, &str, u16)> = vec![
        (
            vec![
                ("form", "register".into()),
                ("type", "action.registered".into()),
                ("action_id", "MIEUX-TH-2020-09".into()),
                ("country", "TH".into()),
                ("occurred_on", "2020-01-01".into()),
                ("data.modality", "training".into()),
                ("data.partner_institutions", "Ministry".into()),
            ],
            "data.title",
            "schema_violation",
            422,
        ),
        (
            report("legislation.bogus", "vot-protocol"),
            "type",
            "unknown_type",
            422,
        ),
        (
            // The service's own type: refused by the form as by the API; no track to show it
            // by, so said above the track's choice.
            report("review.completed", "vot-protocol"),
            "",
            "forbidden_type",
            422,
        ),
        (
            report("policy.drafting", "vot-protocol"),
            "type",
            "track_mismatch",
            422,
        ),
        (
            with(
                report("legislation.adopted", "vot-protocol"),
                &[
                    ("data.expected.stage", "ratified"),
                    ("data.expected.by", "2020-01-01"),
                ],
            ),
            "data.expected.stage",
            "expected_stage_invalid",
            422,
        ),
        (
            with(
                report("legislation.adopted", "vot-protocol"),
                &[("occurred_on", &tomorrow)],
            ),
            "occurred_on",
            "occurred_in_future",
            422,
        ),
        (
            with(
                report("legislation.adopted", "vot-protocol"),
                &[("country", "LA")],
            ),
            // The country is not typed in a report: said above the form.
            "",
            "country_mismatch",
            422,
        ),
        (
            vec![
                ("form", "verify".into()),
                ("type", "outcome.verified".into()),
                ("action_id", THAI.into()),
                ("country", "TH".into()),
                ("outcome_id", "no-such-outcome".into()),
                ("occurred_on", "2019-02-01".into()),
                ("data.by", "the evaluator".into()),
            ],
            "outcome_id",
            "outcome_unknown",
            422,
        ),
        (
            vec![
                ("form", "retract".into()),
                ("type", "event.retracted".into()),
                ("action_id", THAI.into()),
                ("country", "TH".into()),
                ("occurred_on", "2019-02-01".into()),
                (
                    "data.target_event_id",
                    "0193a1e2-7c4b-7d2a-9a51-2f0c3b7e9d10".into(),
                ),
                ("data.reason", "sent twice".into()),
            ],
            "data.target_event_id",
            "retraction_target_unknown",
            422,
        ),
        (
            with(
                report("legislation.adopted", "vot-protocol"),
                &[("evidence.0.url", "https://example.org/x.pdf")],
            ),
            "evidence.0.title",
            "schema_violation",
            422,
        ),
        (
            with(
                report("legislation.adopted", "vot-protocol"),
                &[("data.description", &"x".repeat(70_000))],
            ),
            "",
            "payload_too_large",
            413,
        ),
    ];
    for (fields, field, code, status) in cases {
        let event_id = new_id();
        let mut posted: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        posted.push(("csrf", &csrf));
        posted.push(("event_id", &event_id));
        let before = history(&service, THAI).await.len();
        let (answer, location, html) = post_form(&service, &admin, &posted).await;
        assert_eq!(answer, status, "{code}: {location} {html}");
        assert!(
            html.contains(&format!("({code})")),
            "{code} is named: {html}"
        );
        if field.is_empty() {
            assert!(
                html.contains("class=\"error\" role=\"alert\""),
                "{code}: {html}"
            );
        } else {
            let error = format!("id=\"{field}-error\" class=\"error\"");
            let at = html
                .find(&error)
                .unwrap_or_else(|| panic!("{code} by {field}: {html}"));
            assert!(
                html[at..].split("</span>").next().unwrap().contains(code),
                "{code}: {html}"
            );
        }
        // What was typed is kept, and the form keeps its event_id. (A type that names no
        // track, which only a hand-made post can send, is said above the choice of a track:
        // there is no report form to keep it in until a track is chosen.)
        let form_again = code != "forbidden_type";
        if form_again && code != "payload_too_large" {
            assert_eq!(input_value(&html, "event_id"), event_id, "{code}");
        }
        if form_again && fields.iter().any(|(n, _)| *n == "data.title") {
            assert!(html.contains("value=\"Typed by hand\""), "{code}: {html}");
        }
        assert_eq!(
            history(&service, THAI).await.len(),
            before,
            "{code}: nothing recorded"
        );
    }

    // The same event_id for other content: refused (409), the first event kept.
    let event_id = new_id();
    let first = with(report("legislation.adopted", "vot-protocol"), &[]);
    let mut posted: Vec<(&str, &str)> = first.iter().map(|(n, v)| (*n, v.as_str())).collect();
    posted.push(("csrf", &csrf));
    posted.push(("event_id", &event_id));
    assert_eq!(post_form(&service, &admin, &posted).await.0, 303);
    let other = with(report("legislation.in_force", "vot-protocol"), &[]);
    let mut posted: Vec<(&str, &str)> = other.iter().map(|(n, v)| (*n, v.as_str())).collect();
    posted.push(("csrf", &csrf));
    posted.push(("event_id", &event_id));
    let (status, _, html) = post_form(&service, &admin, &posted).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("(event_id_conflict)"), "{html}");
}

#[tokio::test]
async fn a_form_post_without_the_session_s_csrf_token_is_refused_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    let fo = sign_in(&service, "fo-token").await;
    let other = sign_in(&service, "fo-token").await;
    let (event_id, _, _) = form(&service, &fo, "/submit?form=register").await;
    let (_, other_csrf, _) = form(&service, &other, "/submit?form=register").await;
    let fields = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("event_id", event_id.clone()),
            ("type", "action.registered".to_owned()),
            ("action_id", THAI.to_owned()),
            ("country", "TH".to_owned()),
            ("occurred_on", "2014-03-01".to_owned()),
            ("data.title", "Study visit".to_owned()),
            ("data.modality", "study_visit".to_owned()),
            ("data.partner_institutions", "Ministry".to_owned()),
        ]
    };
    for csrf in ["", "not-a-token", other_csrf.as_str()] {
        let posted = fields(csrf);
        let posted: Vec<(&str, &str)> = posted.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, _, html) = post_form(&service, &fo, &posted).await;
        assert_eq!(status, 403, "{csrf:?}: {html}");
        assert!(html.contains("csrf"), "{html}");
    }
    // Every form's post, with another session's token: refused before anything is read.
    for (kind, event_type) in [
        ("register", "action.registered"),
        ("report", "legislation.pending"),
        ("verify", "outcome.verified"),
        ("dispute", "outcome.disputed"),
        ("expectation", "outcome.expectation_revised"),
        ("retract", "event.retracted"),
    ] {
        let posted = [
            ("csrf", other_csrf.as_str()),
            ("event_id", event_id.as_str()),
            ("form", kind),
            ("type", event_type),
            ("action_id", THAI),
            ("country", "TH"),
            ("outcome_id", "vot-protocol"),
            ("occurred_on", "2019-01-01"),
        ];
        let (status, _, html) = post_form(&service, &fo, &posted).await;
        assert_eq!(status, 403, "{kind}: {html}");
        assert!(html.contains("<code>csrf</code>"), "{kind}: {html}");
    }
    // Without the csrf field at all; and with a bearer token instead of a session.
    let posted = fields("");
    let posted: Vec<(&str, &str)> = posted
        .iter()
        .skip(1)
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    assert_eq!(post_form(&service, &fo, &posted).await.0, 403);
    let response = page_client()
        .post(service.url("/submit"))
        .bearer_auth("fo-token")
        .form(&posted)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(history(&service, THAI).await.is_empty(), "nothing recorded");
}

/// A field office sees no form for another country's Action or for a type its role may not
/// submit, and the server refuses such a form posted by hand.
#[tokio::test]
async fn roles_and_countries_hold_for_forms_shown_and_posted_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    admin_posts(&service, json!(thai_with_a_protocol())).await;
    seed_lao(&service).await;
    let fo = sign_in(&service, "fo-token").await;
    let (_, chooser) = page(&service, "/submit", &fo).await;
    assert!(chooser.contains("Register an Action") && chooser.contains("Report a stage"));
    assert!(
        !chooser.contains("Verify an outcome") && !chooser.contains("Dispute"),
        "{chooser}"
    );
    for path in [
        format!("/submit?form=report&action_id={LAO}"),
        format!("/submit?form=report&action_id={LAO}&track=network"),
        format!("/submit?form=retract&action_id={LAO}"),
    ] {
        let (status, html) = page(&service, &path, &fo).await;
        assert_eq!(status, 403, "{path}: {html}");
        assert!(
            !html.contains("Study visit"),
            "nothing of the Lao Action: {html}"
        );
    }
    let (status, _) = page(
        &service,
        &format!("/submit?form=verify&action_id={THAI}"),
        &fo,
    )
    .await;
    assert_eq!(status, 403, "a field office does not verify");
    let (_, action) = page(&service, &format!("/actions/{THAI}"), &fo).await;
    assert!(
        action.contains("report a stage of an outcome") && !action.contains("verify an outcome")
    );

    let (_, csrf, _) = form(&service, &fo, "/submit?form=register").await;
    let by_hand = [
        // Another country's Action.
        vec![
            ("type", "network.created"),
            ("action_id", LAO),
            ("country", "LA"),
            ("outcome_id", "net"),
            ("occurred_on", "2020-01-01"),
        ],
        // A type a field office may not submit.
        vec![
            ("type", "outcome.verified"),
            ("action_id", THAI),
            ("country", "TH"),
            ("outcome_id", "vot-protocol"),
            ("occurred_on", "2020-01-01"),
            ("data.by", "me"),
        ],
    ];
    for fields in by_hand {
        let id = new_id();
        let mut posted = fields.clone();
        posted.push(("csrf", &csrf));
        posted.push(("event_id", &id));
        let (status, _, html) = post_form(&service, &fo, &posted).await;
        assert_eq!(status, 403, "{fields:?}: {html}");
        assert!(
            html.contains("(forbidden)") || html.contains("<code>forbidden</code>"),
            "{html}"
        );
    }
    assert_eq!(history(&service, THAI).await.len(), 2);
    assert_eq!(history(&service, LAO).await.len(), 1);

    // An evaluator verifies the outcome from its form.
    let eval = sign_in(&service, "eval-token").await;
    let path = format!("/submit?form=verify&action_id={THAI}");
    let (event_id, csrf, html) = form(&service, &eval, &path).await;
    assert!(html.contains("<option value=\"vot-protocol\">"), "{html}");
    let posted = [
        ("csrf", csrf.as_str()),
        ("event_id", event_id.as_str()),
        ("type", "outcome.verified"),
        ("action_id", THAI),
        ("country", "TH"),
        ("outcome_id", "vot-protocol"),
        ("occurred_on", "2019-02-01"),
        ("data.by", "ministry records"),
    ];
    let (status, location, html) = post_form(&service, &eval, &posted).await;
    assert_eq!(status, 303, "{html}");
    let (_, action) = page(&service, &location, &eval).await;
    assert!(
        action.contains("Recorded: outcome verified of vot-protocol"),
        "{action}"
    );
    assert!(action.contains(" · verified"), "{action}");
}

/// A field office withdraws its report from the Action's history table.
#[tokio::test]
async fn an_event_is_retracted_from_the_history_table_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    let reported = track(
        THAI,
        "TH",
        "vot-protocol",
        "legislation.pending",
        "2018-11-20",
    );
    admin_posts(&service, json!([registered(THAI, "TH"), reported])).await;
    let target = reported["event_id"].as_str().unwrap();
    let fo = sign_in(&service, "fo-token").await;
    let (_, action) = page(&service, &format!("/actions/{THAI}"), &fo).await;
    let link =
        format!("/submit?form=retract&amp;action_id={THAI}&amp;data.target_event_id={target}");
    assert!(action.contains(&link), "{action}");
    // Without an event chosen, the page sends to the history's links, with no form to send.
    let (_, unchosen) = page(
        &service,
        &format!("/submit?form=retract&action_id={THAI}"),
        &fo,
    )
    .await;
    assert!(
        unchosen.contains("the Action's history</a>") && !unchosen.contains("submit-form"),
        "{unchosen}"
    );
    let (event_id, csrf, html) = form(&service, &fo, &link.replace("&amp;", "&")).await;
    assert!(
        html.contains("Withdraws: <strong>legislation: pending of vot-protocol, 20 November 2018, log position 2</strong>"),
        "{html}"
    );
    let posted = [
        ("csrf", csrf.as_str()),
        ("event_id", event_id.as_str()),
        ("type", "event.retracted"),
        ("action_id", THAI),
        ("country", "TH"),
        ("occurred_on", "2019-01-05"),
        ("data.target_event_id", target),
        ("data.reason", "reported for the wrong Action"),
    ];
    let (status, location, html) = post_form(&service, &fo, &posted).await;
    assert_eq!(status, 303, "{html}");
    let (_, action) = page(&service, &location, &fo).await;
    assert!(action.contains("Recorded: event retracted"), "{action}");
    assert!(action.contains("<strong>(retracted)</strong>"), "{action}");
    assert!(action.contains("No outcome reported yet."), "{action}");
    // An evaluator may not withdraw a field office's report: no link for it.
    let eval = sign_in(&service, "eval-token").await;
    let (_, action) = page(&service, &format!("/actions/{THAI}"), &eval).await;
    assert!(!action.contains("form=retract"), "{action}");
}

/// The stages a report form offers are the domain's table, in its order, for every track.
#[tokio::test]
async fn the_report_form_offers_each_track_s_stages_from_the_domain_table() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    admin_posts(&service, json!([registered(THAI, "TH")])).await;
    let fo = sign_in(&service, "fo-token").await;
    let (_, tracks) = page(
        &service,
        &format!("/submit?form=report&action_id={THAI}"),
        &fo,
    )
    .await;
    for track in Track::all() {
        assert!(
            tracks.contains(&format!("<option value=\"{}\">", track.name())),
            "{tracks}"
        );
        let path = format!(
            "/submit?form=report&action_id={THAI}&track={}",
            track.name()
        );
        let (_, html) = page(&service, &path, &fo).await;
        let offered: Vec<String> = html
            .split("name=\"type\" value=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect();
        let table: Vec<String> = track.stages().map(|stage| stage.event_type()).collect();
        assert_eq!(offered, table, "{}", track.name());
        let expected: Vec<String> = html
            .split("<select id=\"data.expected.stage\"")
            .nth(1)
            .unwrap()
            .split("</select>")
            .next()
            .unwrap()
            .split("<option value=\"")
            .skip(2)
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect();
        let forward: Vec<String> = track
            .stages()
            .filter(|stage| stage.rank().is_some())
            .map(|stage| stage.name().to_owned())
            .collect();
        assert_eq!(
            expected,
            forward,
            "{}: only forward stages are expected",
            track.name()
        );
        // Each stage says what it means.
        assert_eq!(
            html.matches("class=\"help\"").count(),
            table.len(),
            "{}",
            track.name()
        );
    }
}

/// A field office revises an expectation (the outcome chosen first, then its track's forward
/// stages only); an evaluator disputes the outcome.
#[tokio::test]
async fn an_expectation_is_revised_and_an_outcome_disputed_from_their_forms() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&["--config", &config(dir.path())]);
    admin_posts(&service, json!(thai_with_a_protocol())).await;
    let fo = sign_in(&service, "fo-token").await;
    let (_, choose) = page(
        &service,
        &format!("/submit?form=expectation&action_id={THAI}"),
        &fo,
    )
    .await;
    assert!(
        choose.contains("Which outcome?") && choose.contains("<option value=\"vot-protocol\">"),
        "{choose}"
    );
    let path = format!("/submit?form=expectation&action_id={THAI}&outcome_id=vot-protocol");
    let (event_id, csrf, html) = form(&service, &fo, &path).await;
    assert!(
        html.contains("name=\"outcome_id\" value=\"vot-protocol\""),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"in_force\">in force</option>"),
        "{html}"
    );
    assert!(
        !html.contains("<option value=\"stalled\">"),
        "no exit is expected: {html}"
    );
    let posted = [
        ("csrf", csrf.as_str()),
        ("event_id", event_id.as_str()),
        ("type", "outcome.expectation_revised"),
        ("action_id", THAI),
        ("country", "TH"),
        ("outcome_id", "vot-protocol"),
        ("occurred_on", "2019-03-01"),
        ("data.expected.stage", "adopted"),
        ("data.expected.by", "2020-06-30"),
        ("data.reason", "the parliament's session moved"),
    ];
    let (status, location, html) = post_form(&service, &fo, &posted).await;
    assert_eq!(status, 303, "{html}");
    let (_, action) = page(&service, &location, &fo).await;
    assert!(
        action.contains("Recorded: expectation revised of vot-protocol"),
        "{action}"
    );
    assert!(
        action.contains("adopted by 30 June 2020 (stated)"),
        "{action}"
    );

    let eval = sign_in(&service, "eval-token").await;
    let (event_id, csrf, _) = form(
        &service,
        &eval,
        &format!("/submit?form=dispute&action_id={THAI}"),
    )
    .await;
    let posted = [
        ("csrf", csrf.as_str()),
        ("event_id", event_id.as_str()),
        ("type", "outcome.disputed"),
        ("action_id", THAI),
        ("country", "TH"),
        ("outcome_id", "vot-protocol"),
        ("occurred_on", "2019-04-01"),
        ("data.by", "the evaluation team"),
        (
            "data.reason",
            "the ministry says the draft is not before parliament",
        ),
    ];
    let (status, location, html) = post_form(&service, &eval, &posted).await;
    assert_eq!(status, 303, "{html}");
    let (_, action) = page(&service, &location, &eval).await;
    assert!(
        action.contains("Recorded: outcome disputed of vot-protocol"),
        "{action}"
    );
    assert!(action.contains(" · disputed"), "{action}");
}
