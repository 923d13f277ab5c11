//! `--demo`: example follow-ups, written by us from the kind of results the programme reports,
//! loaded through the normal validation and bus when the store is empty.

use crate::app::App;
use crate::domain::validate::Origin;
use anyhow::Context;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Demo events have fixed ids, so loading them twice changes nothing.
fn demo_id(n: usize) -> String {
    let digest = Sha256::digest(format!("impact-demo-event-{n}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn registered(
    action: &str,
    country: &str,
    on: &str,
    title: &str,
    modality: &str,
    partners: &[&str],
    theme: &str,
) -> Value {
    json!({"type": "action.registered", "action_id": action, "country": country, "occurred_on": on,
           "data": {"title": title, "modality": modality, "partner_institutions": partners, "start_on": on, "theme": theme}})
}

fn outcome(
    action: &str,
    country: &str,
    outcome: &str,
    event_type: &str,
    on: &str,
    data: Value,
) -> Value {
    json!({"type": event_type, "action_id": action, "country": country, "outcome_id": outcome, "occurred_on": on, "data": data})
}

/// The demo follow-ups, in the order a field office would have sent them.
pub fn events() -> Vec<Value> {
    const TH: &str = "MIEUX-TH-2014-01";
    const LA: &str = "MIEUX-LA-2016-02";
    const PH: &str = "MIEUX-PH-2015-03";
    const TL: &str = "MIEUX-TL-2017-04";
    const KH: &str = "MIEUX-KH-2017-05";
    const KG: &str = "MIEUX-KG-2018-06";
    let mut events = vec![
        registered(
            TH,
            "TH",
            "2014-03-01",
            "Study visit on counter-trafficking cooperation between Thai and EU authorities",
            "study_visit",
            &[
                "Department of Special Investigation",
                "Ministry of Social Development and Human Security",
            ],
            "trafficking in human beings",
        ),
        outcome(
            TH,
            "TH",
            "thai-eu-network",
            "network.created",
            "2015-02-10",
            json!({"title": "Network between Thai and EU counter-trafficking authorities", "parties": ["Department of Special Investigation", "EU member-state police liaison officers"], "significance": "high", "contribution": {"level": "substantial", "confidence": "medium"}}),
        ),
        outcome(
            TH,
            "TH",
            "repatriation-focal-points",
            "mechanism.proposed",
            "2014-11-01",
            json!({"title": "Focal points for repatriation and voluntary return of trafficking victims", "kind": "focal_point"}),
        ),
        outcome(
            TH,
            "TH",
            "repatriation-focal-points",
            "mechanism.established",
            "2015-09-15",
            json!({"kind": "focal_point", "note": "Focal points named in the ministry and in three provinces", "expected": {"stage": "operational", "by": "2016-06-30"}}),
        ),
        outcome(
            TH,
            "TH",
            "thai-eu-network",
            "network.active",
            "2016-06-01",
            json!({"note": "Joint case reviews held twice a year"}),
        ),
        outcome(
            TH,
            "TH",
            "vot-protocol",
            "legislation.drafting",
            "2017-06-01",
            json!({"title": "Protocol for victim protection revised to cover assistance outside shelters", "social_actor": "Ministry of Social Development and Human Security"}),
        ),
        outcome(
            TH,
            "TH",
            "vot-protocol",
            "legislation.pending",
            "2018-11-20",
            json!({"note": "The law change is pending and due in the coming months", "expected": {"stage": "adopted", "by": "2019-05-31"}}),
        ),
        registered(
            LA,
            "LA",
            "2016-04-11",
            "Expert mission on migration data management",
            "expert_mission",
            &[
                "Ministry of Labour and Social Welfare",
                "Lao Statistics Bureau",
            ],
            "labour migration",
        ),
        outcome(
            LA,
            "LA",
            "migration-data-working-group",
            "mechanism.established",
            "2017-05-18",
            json!({"title": "Inter-ministerial National Migration Data Working Group", "kind": "working_group", "description": "Convened for the first time, towards a labour-migration database", "expected": {"stage": "operational", "by": "2018-12-31"}}),
        ),
        registered(
            PH,
            "PH",
            "2015-06-08",
            "Training on social marketing for the protection of migrant workers",
            "training",
            &["Philippine Overseas Employment Administration"],
            "labour migration",
        ),
        outcome(
            PH,
            "PH",
            "social-marketing-campaigns",
            "practice.awareness",
            "2015-10-01",
            json!({"title": "Social-marketing learnings applied in campaigns for migrant workers"}),
        ),
        outcome(
            PH,
            "PH",
            "social-marketing-campaigns",
            "practice.applied",
            "2016-08-15",
            json!({"note": "Pre-departure campaign designed with the audience research method from the training"}),
        ),
        outcome(
            PH,
            "PH",
            "social-marketing-campaigns",
            "practice.routine",
            "2018-03-01",
            json!({"note": "Every later campaign uses the method"}),
        ),
        registered(
            TL,
            "TL",
            "2017-09-04",
            "Workshop on border management and anti-trafficking for the national police",
            "workshop",
            &["Polícia Nacional de Timor-Leste"],
            "border management",
        ),
        outcome(
            TL,
            "TL",
            "police-border-awareness",
            "practice.awareness",
            "2017-11-20",
            json!({"title": "Police aware of needed improvements in border management and anti-trafficking"}),
        ),
        registered(
            KH,
            "KH",
            "2017-10-02",
            "Workshop on anti-trafficking investigation for border police",
            "workshop",
            &["Cambodian National Police"],
            "trafficking in human beings",
        ),
        outcome(
            KH,
            "KH",
            "police-anti-trafficking-practice",
            "practice.applied",
            "2018-09-01",
            json!({"title": "Border police apply the screening checklist for trafficking victims"}),
        ),
        outcome(
            KH,
            "KH",
            "police-anti-trafficking-practice",
            "practice.lapsed",
            "2020-06-01",
            json!({"note": "Checklist no longer used after staff rotation"}),
        ),
        registered(
            KG,
            "KG",
            "2018-05-14",
            "Expert mission on the national migration policy",
            "expert_mission",
            &["State Migration Service"],
            "migration governance",
        ),
        outcome(
            KG,
            "KG",
            "national-migration-policy",
            "policy.drafting",
            "2018-10-01",
            json!({"title": "National migration policy"}),
        ),
        outcome(
            KG,
            "KG",
            "national-migration-policy",
            "policy.consultation",
            "2019-06-01",
            json!({}),
        ),
        outcome(
            KG,
            "KG",
            "national-migration-policy",
            "policy.final_approval",
            "2020-02-15",
            json!({"note": "In the final stages of ratification", "expected": {"stage": "ratified", "by": "2020-09-30"}}),
        ),
    ];
    let mut verified = outcome(
        TH,
        "TH",
        "thai-eu-network",
        "outcome.verified",
        "2016-09-01",
        json!({"by": "Mid-term evaluation team", "note": "Minutes of two joint case reviews seen"}),
    );
    verified["evidence"] =
        json!([{"title": "Joint case review minutes", "media_type": "application/pdf"}]);
    events.push(verified);
    events.push(outcome(
        PH,
        "PH",
        "social-marketing-campaigns",
        "outcome.verified",
        "2018-05-10",
        json!({"by": "Programme evaluator"}),
    ));
    for (n, event) in events.iter_mut().enumerate() {
        event["event_id"] = json!(demo_id(n));
        event["reported_by"] = json!("impact-demo");
    }
    events
}

/// Loads the demo events if the log is empty.
pub async fn load_if_empty(app: &Arc<App>) -> anyhow::Result<()> {
    if app.store.last_seq()? > 0 {
        tracing::info!("the store holds events already; the demo data is not loaded");
        return Ok(());
    }
    let parsed = events()
        .into_iter()
        .map(|event| app.schemas.parse_value(event, Origin::Client))
        .collect::<Result<Vec<_>, _>>()
        .context("the demo events are valid")?;
    let count = parsed.len();
    let published = app
        .bus
        .publish(parsed, Origin::Client, None)
        .await
        .map_err(|e| anyhow::anyhow!("load the demo data: {e}"))?;
    if let Some(last) = published.iter().filter_map(|p| p.stream_seq).max() {
        app.wait_applied(last).await;
    }
    tracing::info!(count, "demo data loaded");
    Ok(())
}
