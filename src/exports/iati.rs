//! The IATI export (CONTRACT.md §9): the Actions in scope as IATI Activity Standard 2.03
//! activities, each outcome a result with one qualitative indicator, written with quick-xml a
//! batch of Actions at a time, so that memory does not grow with the number of Actions.
//!
//! What the standard asks that the service does not hold, chosen here (ARCHITECTURE.md):
//! `participating-org` is the reporting organisation as implementer (role 4); `activity-status`
//! is 3 (finalisation: the Action took place, its results are being followed) or 4 once closed;
//! `activity-date` type 2 is the registration's date (else the first event's), type 4 the
//! closing's; a result's period runs from its first stage report to the reference date.

use super::{Asked, ExportError};
use crate::config::IatiConfig;
use crate::domain::contribution::{self, Contribution};
use crate::domain::export::{flags_of, Scope};
use crate::domain::fold::{ActionRecord, ActionStatus, Fact, FoldEvent, OutcomeView, ViewRules};
use crate::domain::tracks::Track;
use crate::queries;
use crate::store::{Store, StoreError};
use crate::web::words;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat};
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

/// The IATI DocumentCategory of an evidence link: "Results, outcomes and outputs".
const EVIDENCE_CATEGORY: &str = "A08";

/// Why there is no IATI document for a scope that holds no Action.
pub const NOTHING_IN_SCOPE: &str =
    "no Action in scope: an IATI document holds at least one activity";

/// Actions handed to a renderer at a time.
const BATCH_ACTIONS: usize = 64;
/// Threads that render Actions while the caller's thread writes what they rendered, in order.
const RENDERERS: usize = 2;

/// Writes the IATI document of the Actions in scope to `out`: how many activities it wrote.
/// With none in scope nothing is written (the standard's document holds at least one activity).
///
/// The records are read in order by one thread and dealt round-robin, `BATCH_ACTIONS` at a
/// time, to `RENDERERS` threads that each draw their batch's activities into bytes; the
/// caller's thread writes the batches in their order. Each channel holds one batch, so memory
/// stays a few batches whatever the number of Actions; when the caller stops (the client went
/// away, or an error), the renderers and the reader stop at their next send.
pub fn write_iati(
    store: &Store,
    durable: u64,
    rules: &ViewRules,
    asked: &Asked<'_>,
    iati: &IatiConfig,
    mut out: impl Write,
) -> Result<u64, ExportError> {
    use std::sync::mpsc::sync_channel;
    let words_of_tracks = TrackWords::new();
    let render = |records: Vec<ActionRecord>| -> Result<(Vec<u8>, u64), ExportError> {
        let reference = queries::reference_date(asked.filters);
        let scope = asked.scope();
        let mut xml = Writer::new(Vec::with_capacity(records.len() * 8192));
        let mut drawn = 0;
        for record in records {
            let filters = asked.filters.within(&record, durable);
            let Some(view) = record.view(&filters, rules) else {
                continue;
            };
            let status = ActionStatus::new(view, rules, reference);
            if !asked.list.matches(&status) {
                continue;
            }
            let said = Said::of(store, &record.visible(&filters))?;
            activity(
                &mut xml,
                iati,
                &status,
                &scope,
                &said,
                asked,
                &words_of_tracks,
            )?;
            drawn += 1;
        }
        Ok((xml.into_inner(), drawn))
    };
    type Rendered = Result<(Vec<u8>, u64), ExportError>;
    std::thread::scope(|threads| {
        let mut to_renderers = Vec::new();
        let mut from_renderers = Vec::new();
        for _ in 0..RENDERERS {
            // A store error goes in place of the batch it stopped, so the writer meets it in
            // order.
            let (to_renderer, batches) = sync_channel::<Result<Vec<ActionRecord>, StoreError>>(1);
            let (rendered, from_renderer) = sync_channel::<Rendered>(1);
            let render = &render;
            threads.spawn(move || {
                for batch in batches {
                    let drawn = batch.map_err(ExportError::from).and_then(render);
                    if rendered.send(drawn).is_err() {
                        return;
                    }
                }
            });
            to_renderers.push(to_renderer);
            from_renderers.push(from_renderer);
        }
        // The reader.
        threads.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH_ACTIONS);
            let mut turn = 0;
            let mut deal = |batch: Result<Vec<ActionRecord>, StoreError>| {
                let sent = to_renderers[turn % RENDERERS].send(batch).is_ok();
                turn += 1;
                sent
            };
            for record in store.records() {
                match record {
                    Err(error) => {
                        if deal(Ok(std::mem::take(&mut batch))) {
                            deal(Err(error));
                        }
                        return;
                    }
                    Ok(record) if asked.keeps(&record.country) => batch.push(record),
                    Ok(_) => continue,
                }
                if batch.len() == BATCH_ACTIONS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ACTIONS));
                    if !deal(Ok(full)) {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                deal(Ok(batch));
            }
        });
        // The writer: the batches in the order they were dealt, until a renderer has no more.
        let mut written = 0;
        for turn in 0.. {
            let Ok(rendered) = from_renderers[turn % RENDERERS].recv() else {
                break;
            };
            let (bytes, drawn) = rendered?;
            if drawn == 0 {
                continue;
            }
            if written == 0 {
                out.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")?;
                out.write_all(b"<iati-activities version=\"2.03\">\n")?;
            }
            out.write_all(&bytes)?;
            written += drawn;
        }
        if written > 0 {
            out.write_all(b"</iati-activities>\n")?;
        }
        out.flush()?;
        Ok(written)
    })
}

/// What an Action's visible events say beyond its view: each outcome's first stage report,
/// contribution and evidence links, and the Action's first, last-recorded and closing dates.
#[derive(Default)]
struct Said<'a> {
    first_day: Option<NaiveDate>,
    closed_on: Option<NaiveDate>,
    last_recorded_us: i64,
    /// By outcome: each track's first stage report, `(occurred_on, seq)` first.
    first_stage: BTreeMap<(&'a str, Track), (When, &'static str)>,
    contributions: BTreeMap<String, Contribution>,
    links: BTreeMap<&'a str, Vec<Link>>,
}

/// Where an event stands in an outcome's order: `(occurred_on, seq)`.
type When = (NaiveDate, u64);

struct Link {
    title: String,
    url: String,
    media_type: Option<String>,
    on: NaiveDate,
}

/// The parts of a stored event the export reads (the rest is skipped, not parsed).
#[derive(Deserialize)]
struct Stored {
    #[serde(default)]
    data: StoredData,
    #[serde(default)]
    evidence: Option<Vec<StoredEvidence>>,
}

#[derive(Default, Deserialize)]
struct StoredData {
    contribution: Option<Contribution>,
}

#[derive(Deserialize)]
struct StoredEvidence {
    title: String,
    url: Option<String>,
    media_type: Option<String>,
}

impl<'a> Said<'a> {
    fn of(store: &Store, visible: &[&'a FoldEvent]) -> Result<Said<'a>, StoreError> {
        let mut said = Said::default();
        let mut stated = Vec::new();
        for event in visible {
            said.first_day = Some(
                said.first_day
                    .map_or(event.occurred_on, |day| day.min(event.occurred_on)),
            );
            said.last_recorded_us = said.last_recorded_us.max(event.recorded_at_us);
            if matches!(event.fact, Fact::Closed) {
                said.closed_on = Some(event.occurred_on);
            }
            let Some(outcome) = event.fact.outcome() else {
                continue;
            };
            let when = (event.occurred_on, event.seq);
            if let Fact::Track { stage, .. } = &event.fact {
                let first = said
                    .first_stage
                    .entry((outcome.as_str(), stage.track()))
                    .or_insert((when, stage.name()));
                if when < first.0 {
                    *first = (when, stage.name());
                }
            }
            // Only a stage report states a contribution, and only an event with evidence
            // links has any: the others are not read.
            let track = matches!(event.fact, Fact::Track { .. });
            if !track && event.evidence_count == 0 {
                continue;
            }
            let json = queries::logged_event(store, event.seq)?;
            let parsed: Stored = serde_json::from_slice(&json)
                .map_err(|e| StoreError::Corrupt(format!("stored event {}: {e}", event.seq)))?;
            if let (true, Some(contribution)) = (track, parsed.data.contribution) {
                stated.push((outcome.to_string(), when, contribution));
            }
            let links = parsed.evidence.into_iter().flatten().filter_map(|item| {
                Some(Link {
                    url: item.url?,
                    title: item.title,
                    media_type: item.media_type,
                    on: event.occurred_on,
                })
            });
            said.links
                .entry(outcome.as_str())
                .or_default()
                .extend(links);
        }
        said.contributions = contribution::latest(stated);
        Ok(said)
    }
}

type Xml<W> = Writer<W>;

fn activity<W: Write>(
    xml: &mut Xml<W>,
    iati: &IatiConfig,
    status: &ActionStatus,
    scope: &Scope,
    said: &Said<'_>,
    asked: &Asked<'_>,
    tracks: &TrackWords,
) -> std::io::Result<()> {
    let view = &status.view;
    let updated = DateTime::from_timestamp_micros(said.last_recorded_us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let identifier = format!("{}-{}", iati.identifier_prefix, view.action_id.as_str());
    let title = match &view.title {
        Some(title) => clean(title),
        None => format!("Action {}", view.action_id.as_str()).into(),
    };
    let started = view
        .registered_on
        .or(said.first_day)
        .unwrap_or(view.last_event_on);
    let attributes = [
        ("last-updated-datetime", updated.as_str()),
        ("xml:lang", "en"),
    ];
    element(xml, "iati-activity", &attributes, |xml| {
        text_element(xml, "iati-identifier", &identifier)?;
        organisation(xml, "reporting-org", iati, None)?;
        narrative_in(xml, "title", &[], &title)?;
        narrative_in(
            xml,
            "description",
            &[("type", "1")],
            &describe(status, asked),
        )?;
        organisation(xml, "participating-org", iati, Some("4"))?;
        let code = if view.closed { "4" } else { "3" };
        empty(xml, "activity-status", &[("code", code)])?;
        date_element(xml, "activity-date", &[("type", "2")], started)?;
        if let (true, Some(closed_on)) = (view.closed, said.closed_on) {
            date_element(xml, "activity-date", &[("type", "4")], closed_on)?;
        }
        empty(xml, "recipient-country", &[("code", view.country.as_str())])?;
        let mut outcomes: Vec<&OutcomeView> = view.outcomes.iter().collect();
        outcomes.sort_by(|a, b| a.outcome_id.as_str().cmp(b.outcome_id.as_str()));
        for outcome in outcomes {
            if scope.admits(outcome, &flags_of(status, outcome)) {
                result(xml, outcome, said, status.reference_date, tracks)?;
            }
        }
        Ok(())
    })?;
    xml.get_mut().write_all(b"\n")
}

/// The Action in a sentence: where, what has come of it, as known when.
fn describe(status: &ActionStatus, asked: &Asked<'_>) -> String {
    let view = &status.view;
    let summary = &view.summary;
    let mut text = format!(
        "Follow-up of the Action {} in {}: {} outcome{} reported ({} in progress, {} achieved, \
         {} sustained, {} going backwards), as of {}",
        view.action_id.as_str(),
        view.country.as_str(),
        summary.outcomes,
        if summary.outcomes == 1 { "" } else { "s" },
        summary.in_progress,
        summary.achieved,
        summary.sustained,
        summary.regressed,
        words::date(status.reference_date),
    );
    if let Some(until) = asked.filters.until_seq {
        text.push_str(&format!(", up to log position {until}"));
    }
    if let Some(known_at) = asked.filters.known_at {
        text.push_str(&format!(
            ", as known at {}",
            known_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    text.push('.');
    text
}

fn result<W: Write>(
    xml: &mut Xml<W>,
    outcome: &OutcomeView,
    said: &Said<'_>,
    reference: NaiveDate,
    tracks: &TrackWords,
) -> std::io::Result<()> {
    let track = Track::parse(outcome.track).expect("a view's track is one of the table's");
    let (indicator_title, indicator_description) = tracks.of(track);
    let first = said
        .first_stage
        .get(&(outcome.outcome_id.as_str(), track))
        .map_or((outcome.stage_since, outcome.stage), |((on, _), stage)| {
            (*on, *stage)
        });
    element(xml, "result", &[("type", "2")], |xml| {
        narrative_in(xml, "title", &[], &clean(&outcome.title))?;
        // The outcome's id, in the reporting organisation's own vocabulary (99).
        empty(
            xml,
            "reference",
            &[("code", outcome.outcome_id.as_str()), ("vocabulary", "99")],
        )?;
        element(
            xml,
            "indicator",
            &[("measure", "5"), ("ascending", "1")],
            |xml| {
                narrative_in(xml, "title", &[], indicator_title)?;
                narrative_in(xml, "description", &[], indicator_description)?;
                let year = first.0.year().max(1).to_string();
                let day = first.0.to_string();
                let attributes = [
                    ("year", year.as_str()),
                    ("iso-date", day.as_str()),
                    ("value", first.1),
                ];
                element(xml, "baseline", &attributes, |xml| {
                    let text = format!(
                        "First stage reported: {}, on {}.",
                        words::name(first.1),
                        words::date(first.0)
                    );
                    narrative_in(xml, "comment", &[], &text)
                })?;
                period(xml, outcome, said, first.0, reference)
            },
        )?;
        Ok(())
    })?;
    Ok(())
}

fn period<W: Write>(
    xml: &mut Xml<W>,
    outcome: &OutcomeView,
    said: &Said<'_>,
    start: NaiveDate,
    reference: NaiveDate,
) -> std::io::Result<()> {
    element(xml, "period", &[], |xml| {
        date_element(xml, "period-start", &[], start)?;
        date_element(xml, "period-end", &[], reference.max(start))?;
        if let Some(expected) = &outcome.expected {
            element(xml, "target", &[("value", expected.stage)], |xml| {
                let text = format!("Expected: {}.", words::expected(expected));
                narrative_in(xml, "comment", &[], &text)
            })?;
        }
        // "lapsed since 1 May 2020 (leaves the track); going backwards from routine; verified"
        let mut actual = format!(
            "{} since {}{}; {}",
            words::name(outcome.stage),
            words::date(outcome.stage_since),
            if is_exit(outcome) {
                " (leaves the track)"
            } else {
                ""
            },
            words::state(outcome.state),
        );
        if let Some(highest) = outcome.highest_stage.filter(|h| *h != outcome.stage) {
            actual.push_str(" from ");
            actual.push_str(&words::name(highest));
        }
        actual.push_str("; ");
        actual.push_str(words::verification(outcome.verification));
        match said.contributions.get(outcome.outcome_id.as_str()) {
            Some(contribution) => {
                actual.push_str(&format!(
                    "; contribution: {}",
                    words::contribution(contribution)
                ));
                if let Some(note) = &contribution.note {
                    actual.push_str(&format!(" ({})", clean(note)));
                }
            }
            None => actual.push_str("; no contribution stated"),
        }
        actual.push('.');
        element(xml, "actual", &[("value", outcome.stage)], |xml| {
            narrative_in(xml, "comment", &[], &actual)?;
            let links = said.links.get(outcome.outcome_id.as_str());
            for link in links.into_iter().flatten() {
                document_link(xml, link)?;
            }
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(())
}

fn is_exit(outcome: &OutcomeView) -> bool {
    Track::parse(outcome.track)
        .and_then(|track| track.stage(outcome.stage))
        .is_some_and(|stage| stage.is_exit())
}

/// Each track's indicator title and description, written once per export rather than once
/// per outcome.
struct TrackWords(Vec<(Track, String, String)>);

impl TrackWords {
    fn new() -> TrackWords {
        TrackWords(
            Track::all()
                .map(|track| {
                    let title = format!("Stage reached on the {} track", words::name(track.name()));
                    (track, title, stages_of(track))
                })
                .collect(),
        )
    }

    fn of(&self, track: Track) -> (&str, &str) {
        let (_, title, description) = self
            .0
            .iter()
            .find(|(known, _, _)| *known == track)
            .expect("every track has its words");
        (title, description)
    }
}

/// A track's stages in words, in order, with where achievement and lasting begin.
fn stages_of(track: Track) -> String {
    let def = track.def();
    let list = |stages: &[&str]| {
        stages
            .iter()
            .map(|stage| words::name(stage))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "The stages of the {} track, in order: {} (achieved from {}, sustained from {}); \
         leaving the track: {}.",
        words::name(def.name),
        list(def.forward),
        words::name(def.achieved_from),
        words::name(def.sustained_from),
        list(def.exits),
    )
}

fn document_link<W: Write>(xml: &mut Xml<W>, link: &Link) -> std::io::Result<()> {
    let format = link
        .media_type
        .as_deref()
        .unwrap_or_else(|| media_type_of(&link.url));
    let url = clean(&link.url);
    element(
        xml,
        "document-link",
        &[("url", url.as_ref()), ("format", format)],
        |xml| {
            narrative_in(xml, "title", &[], &clean(&link.title))?;
            empty(xml, "category", &[("code", EVIDENCE_CATEGORY)])?;
            date_element(xml, "document-date", &[], link.on)?;
            Ok(())
        },
    )?;
    Ok(())
}

/// The media type a link's address suggests, for a link given without one (IATI's
/// FileFormat codelist is the IANA media types); a web page when nothing suggests another.
fn media_type_of(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "csv" => "text/csv",
        "txt" => "text/plain",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => "text/html",
    }
}

fn organisation<W: Write>(
    xml: &mut Xml<W>,
    element: &str,
    iati: &IatiConfig,
    role: Option<&str>,
) -> std::io::Result<()> {
    let mut attributes = vec![
        ("ref", iati.reporting_org_ref.as_str()),
        ("type", iati.reporting_org_type.as_str()),
    ];
    if let Some(role) = role {
        attributes.insert(0, ("role", role));
    }
    narrative_in(xml, element, &attributes, &clean(&iati.reporting_org_name))
}

/// An element's start tag, its attributes escaped by quick-xml; the buffer is sized once (an
/// attribute pushed onto a tag of a borrowed name grows it a step at a time otherwise).
fn start<'a>(name: &'a str, attributes: &[(&str, &str)]) -> BytesStart<'a> {
    if attributes.is_empty() {
        return BytesStart::new(name);
    }
    let room: usize = attributes
        .iter()
        .map(|(k, v)| k.len() + 2 * v.len() + 4)
        .sum();
    let mut content = String::with_capacity(name.len() + room);
    content.push_str(name);
    let mut tag = BytesStart::from_content(content, name.len());
    for attribute in attributes {
        tag.push_attribute(*attribute);
    }
    tag
}

/// `<name attributes>…</name>`, the inside written by `inner`.
fn element<W: Write>(
    xml: &mut Xml<W>,
    name: &str,
    attributes: &[(&str, &str)],
    inner: impl FnOnce(&mut Xml<W>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    xml.write_event(Event::Start(start(name, attributes)))?;
    inner(xml)?;
    xml.write_event(Event::End(BytesEnd::new(name)))
}

/// `<name attributes/>`.
fn empty<W: Write>(
    xml: &mut Xml<W>,
    name: &str,
    attributes: &[(&str, &str)],
) -> std::io::Result<()> {
    xml.write_event(Event::Empty(start(name, attributes)))
}

/// `<name>text</name>`, the text escaped by quick-xml.
fn text_element<W: Write>(xml: &mut Xml<W>, name: &str, text: &str) -> std::io::Result<()> {
    xml.write_event(Event::Start(BytesStart::new(name)))?;
    xml.write_event(Event::Text(BytesText::new(text)))?;
    xml.write_event(Event::End(BytesEnd::new(name)))
}

/// `<element attributes><narrative>text</narrative></element>`.
fn narrative_in<W: Write>(
    xml: &mut Xml<W>,
    element_name: &str,
    attributes: &[(&str, &str)],
    text: &str,
) -> std::io::Result<()> {
    element(xml, element_name, attributes, |xml| {
        text_element(xml, "narrative", text)
    })
}

fn date_element<W: Write>(
    xml: &mut Xml<W>,
    name: &str,
    attributes: &[(&str, &str)],
    date: NaiveDate,
) -> std::io::Result<()> {
    let day = date.to_string();
    let mut all = attributes.to_vec();
    all.push(("iso-date", day.as_str()));
    empty(xml, name, &all)
}

/// `text` with every character XML 1.0 cannot hold (control characters but tab and line
/// breaks, U+FFFE, U+FFFF) replaced by U+FFFD; quick-xml escapes the rest.
fn clean(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    if text.chars().all(allowed) {
        return text.into();
    }
    text.chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_cannot_hold_are_replaced() {
        assert_eq!(clean("a\u{1}b\u{FFFF}c\td\ne"), "a\u{FFFD}b\u{FFFD}c\td\ne");
        assert!(matches!(clean("plain <text> & more"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_link_without_a_media_type_is_named_by_its_address() {
        assert_eq!(
            media_type_of("https://example.org/m.PDF?x=1"),
            "application/pdf"
        );
        assert_eq!(media_type_of("https://example.org/report"), "text/html");
        assert_eq!(media_type_of("https://example.org/a.b/c"), "text/html");
    }

    #[test]
    fn every_track_reads_in_words() {
        for track in Track::all() {
            let text = stages_of(track);
            assert!(!text.contains('_'), "{text}");
        }
    }
}
