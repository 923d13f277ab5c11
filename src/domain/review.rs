//! The review engine (CONTRACT.md §5), pure: views read at a reference date and log position
//! → a report of totals, findings (the flags of §3) and highlights (what was achieved or
//! sustained). The same inputs give the same report, byte for byte.

use super::fold::{ActionStatus, OutcomeState, Verification};
use super::ids::{ActionId, Country, EventId, OutcomeId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Totals {
    pub actions: u32,
    pub outcomes: u32,
    pub in_progress: u32,
    pub achieved: u32,
    pub sustained: u32,
    pub regressed: u32,
    pub verified: u32,
    pub disputed: u32,
    pub reported: u32,
}

impl Totals {
    /// Each total with its name in the report's JSON, in the report's order.
    pub fn named(&self) -> [(&'static str, u32); 9] {
        [
            ("actions", self.actions),
            ("outcomes", self.outcomes),
            ("in_progress", self.in_progress),
            ("achieved", self.achieved),
            ("sustained", self.sustained),
            ("regressed", self.regressed),
            ("verified", self.verified),
            ("disputed", self.disputed),
            ("reported", self.reported),
        ]
    }

    fn count(&mut self, state: OutcomeState, verification: Verification) {
        self.outcomes += 1;
        match state {
            OutcomeState::InProgress => self.in_progress += 1,
            OutcomeState::Achieved => self.achieved += 1,
            OutcomeState::Sustained => self.sustained += 1,
            OutcomeState::Regressed => self.regressed += 1,
        }
        match verification {
            Verification::Verified => self.verified += 1,
            Verification::Disputed => self.disputed += 1,
            Verification::Reported => self.reported += 1,
        }
    }
}

/// A flag found by a review. The titles are there so a person can read the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub action_id: ActionId,
    pub outcome_id: Option<OutcomeId>,
    pub flag: String,
    pub detail: String,
    pub action_title: Option<String>,
    pub outcome_title: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Highlight {
    pub action_id: ActionId,
    pub outcome_id: OutcomeId,
    pub track: String,
    pub stage: String,
    pub state: OutcomeState,
    pub action_title: Option<String>,
    pub outcome_title: String,
    pub stage_since: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewReport {
    pub review_id: String,
    pub as_of: NaiveDate,
    pub until_seq: u64,
    pub country: Option<Country>,
    pub schedule_slot: Option<String>,
    pub totals: Totals,
    #[serde(default)]
    pub by_country: BTreeMap<String, Totals>,
    #[serde(default)]
    pub by_track: BTreeMap<String, Totals>,
    pub findings: Vec<Finding>,
    pub highlights: Vec<Highlight>,
    /// Stored reports only, when the report did not fit one message: the event ids of its
    /// `review.part` events, in order. Never in a report that is read back whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub parts: Vec<EventId>,
}

/// A part of a report too large for one message (CONTRACT.md §11): some of its findings and
/// highlights, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewPart {
    pub review_id: String,
    /// 1-based.
    pub index: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub highlights: Vec<Highlight>,
}

impl ReviewReport {
    /// The report without its findings and highlights, and those in parts whose items take at
    /// most `part_bytes` of JSON each (an item larger than that has a part of its own).
    pub fn into_parts(mut self, part_bytes: usize) -> (ReviewReport, Vec<ReviewPart>) {
        let mut packer = Packer {
            review_id: &self.review_id,
            budget: part_bytes,
            parts: Vec::new(),
            used: part_bytes,
        };
        for finding in std::mem::take(&mut self.findings) {
            packer.room_for(&finding).findings.push(finding);
        }
        for highlight in std::mem::take(&mut self.highlights) {
            packer.room_for(&highlight).highlights.push(highlight);
        }
        let parts = packer.parts;
        (self, parts)
    }

    /// The stored head of a report and its parts, in order, as one report.
    pub fn joined(mut self, parts: impl IntoIterator<Item = ReviewPart>) -> ReviewReport {
        for part in parts {
            self.findings.extend(part.findings);
            self.highlights.extend(part.highlights);
        }
        self.parts.clear();
        self
    }
}

/// Fills parts in order, starting a new one when the next item would overflow the budget.
struct Packer<'a> {
    review_id: &'a str,
    budget: usize,
    parts: Vec<ReviewPart>,
    used: usize,
}

impl Packer<'_> {
    fn room_for(&mut self, item: &impl Serialize) -> &mut ReviewPart {
        // As written in the part's JSON array, with its comma.
        let bytes = serde_json::to_vec(item).map_or(0, |json| json.len()) + 1;
        if self.used > 0 && self.used + bytes > self.budget {
            self.parts.push(ReviewPart {
                review_id: self.review_id.to_owned(),
                index: self.parts.len() as u32 + 1,
                findings: Vec::new(),
                highlights: Vec::new(),
            });
            self.used = 0;
        }
        self.used += bytes;
        self.parts.last_mut().expect("a part was started")
    }
}

/// What a review reads: a reference date, a log position and an optional country.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewScope {
    pub as_of: NaiveDate,
    pub until_seq: u64,
    pub country: Option<Country>,
}

/// Builds the report from the statuses in scope (each read with `as_of` and `until_seq`).
/// `statuses` may come in any order, one at a time: only the report is kept, so its memory is
/// that of the findings and highlights, not of the views read. The report is sorted.
pub fn build_report<S: std::borrow::Borrow<ActionStatus>>(
    review_id: String,
    scope: &ReviewScope,
    schedule_slot: Option<String>,
    statuses: impl IntoIterator<Item = S>,
) -> ReviewReport {
    let mut totals = Totals::default();
    let mut by_country: BTreeMap<String, Totals> = BTreeMap::new();
    let mut by_track: BTreeMap<String, Totals> = BTreeMap::new();
    let mut findings = Vec::new();
    let mut highlights = Vec::new();
    for status in statuses {
        let status = status.borrow();
        let view = &status.view;
        if scope
            .country
            .as_ref()
            .is_some_and(|country| *country != view.country)
        {
            continue;
        }
        totals.actions += 1;
        let country_totals = by_country.entry(view.country.to_string()).or_default();
        country_totals.actions += 1;
        let mut tracks_seen: Vec<&str> = Vec::new();
        for outcome in &view.outcomes {
            totals.count(outcome.state, outcome.verification);
            country_totals.count(outcome.state, outcome.verification);
            let track_totals = by_track.entry(outcome.track.to_owned()).or_default();
            track_totals.count(outcome.state, outcome.verification);
            if !tracks_seen.contains(&outcome.track) {
                tracks_seen.push(outcome.track);
                track_totals.actions += 1;
            }
            if matches!(
                outcome.state,
                OutcomeState::Achieved | OutcomeState::Sustained
            ) {
                highlights.push(Highlight {
                    action_id: view.action_id.clone(),
                    outcome_id: outcome.outcome_id.clone(),
                    track: outcome.track.to_owned(),
                    stage: outcome.stage.to_owned(),
                    state: outcome.state,
                    action_title: view.title.clone(),
                    outcome_title: outcome.title.clone(),
                    stage_since: outcome.stage_since,
                });
            }
        }
        for flag in &status.flags {
            let outcome_title = flag
                .outcome_id
                .as_ref()
                .and_then(|id| {
                    view.outcomes
                        .iter()
                        .find(|outcome| outcome.outcome_id == *id)
                })
                .map(|outcome| outcome.title.clone());
            findings.push(Finding {
                action_id: view.action_id.clone(),
                outcome_id: flag.outcome_id.clone(),
                flag: flag.flag.as_str().to_owned(),
                detail: flag.detail.clone(),
                action_title: view.title.clone(),
                outcome_title,
            });
        }
    }
    findings.sort_by(|a, b| {
        (&a.action_id, &a.outcome_id, &a.flag).cmp(&(&b.action_id, &b.outcome_id, &b.flag))
    });
    highlights.sort_by(|a, b| (&a.action_id, &a.outcome_id).cmp(&(&b.action_id, &b.outcome_id)));
    ReviewReport {
        review_id,
        as_of: scope.as_of,
        until_seq: scope.until_seq,
        country: scope.country.clone(),
        schedule_slot,
        totals,
        by_country,
        by_track,
        findings,
        highlights,
        parts: Vec::new(),
    }
}

/// The report as Markdown, for a person: summary, tables, findings by flag, highlights.
/// Text from a report (a title someone typed) as Markdown that shows it as written: one line,
/// no control characters, every character Markdown or HTML would act on escaped.
pub fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            // Inline markup only: a title never starts a line, so `-`, `+` and `1.` stay.
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '!' | '|' | '<'
            | '>' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

pub fn render_markdown(report: &ReviewReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let scope = report
        .country
        .as_ref()
        .map_or("all countries".to_owned(), |c| c.to_string());
    let _ = writeln!(out, "# Impact review {}\n", report.review_id);
    let _ = writeln!(
        out,
        "As of **{}**, log position {}, {scope}{}.\n",
        report.as_of,
        report.until_seq,
        report
            .schedule_slot
            .as_ref()
            .map_or(String::new(), |slot| format!(", scheduled slot {slot}"))
    );
    let t = &report.totals;
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(
        out,
        "{} Actions, {} outcomes: {} in progress, {} achieved, {} sustained, {} regressed. \
         {} verified, {} disputed, {} reported only. {} findings.\n",
        t.actions,
        t.outcomes,
        t.in_progress,
        t.achieved,
        t.sustained,
        t.regressed,
        t.verified,
        t.disputed,
        t.reported,
        report.findings.len()
    );
    for (heading, table) in [
        ("By country", &report.by_country),
        ("By track", &report.by_track),
    ] {
        let _ = writeln!(out, "## {heading}\n");
        let _ = writeln!(out, "| | Actions | Outcomes | In progress | Achieved | Sustained | Regressed | Verified | Disputed |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, t) in table {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.actions,
                t.outcomes,
                t.in_progress,
                t.achieved,
                t.sustained,
                t.regressed,
                t.verified,
                t.disputed
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Findings\n");
    if report.findings.is_empty() {
        let _ = writeln!(out, "Nothing flagged.\n");
    }
    let mut flags: Vec<&str> = report.findings.iter().map(|f| f.flag.as_str()).collect();
    flags.sort();
    flags.dedup();
    for flag in flags {
        let _ = writeln!(out, "### {}\n", flag.replace('_', " "));
        for finding in report.findings.iter().filter(|f| f.flag == flag) {
            let action = finding
                .action_title
                .as_deref()
                .map_or("(unregistered)".to_owned(), markdown_text);
            let outcome = finding
                .outcome_title
                .as_ref()
                .map_or(String::new(), |title| {
                    format!(
                        " — {} (`{}`)",
                        markdown_text(title),
                        finding.outcome_id.as_ref().map_or("", |id| id.as_str())
                    )
                });
            let _ = writeln!(
                out,
                "- **{}** {action}{outcome}: {}",
                finding.action_id, finding.detail
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Highlights: what was achieved and what lasted\n");
    if report.highlights.is_empty() {
        let _ = writeln!(out, "None yet.\n");
    }
    for highlight in &report.highlights {
        let _ = writeln!(
            out,
            "- **{}** {} — {}: {} `{}` since {} ({})",
            highlight.action_id,
            highlight
                .action_title
                .as_deref()
                .map_or("(unregistered)".to_owned(), markdown_text),
            markdown_text(&highlight.outcome_title),
            highlight.track,
            highlight.stage,
            highlight.stage_since,
            highlight.state.as_str()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_title_cannot_become_markup_in_markdown() {
        let typed =
            "<script>alert(1)</script> | # Heading\n* item [link](http://x) `code` \u{1b}[31m";
        let shown = markdown_text(typed);
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        for c in ['<', '>', '|', '#', '*', '[', ']', '(', ')', '`'] {
            let unescaped = shown
                .char_indices()
                .filter(|&(i, found)| found == c && !shown[..i].ends_with('\\'))
                .count();
            assert_eq!(unescaped, 0, "{c} is escaped in {shown}");
        }
        // Escapes are all it adds: stripped of them, it reads as typed (on one line).
        let plain: String = shown.replace('\\', "");
        assert_eq!(
            plain,
            "<script>alert(1)</script> | # Heading * item [link](http://x) `code` [31m"
        );
    }
    use crate::domain::fold::{
        ActionView, DateSource, ExpectedView, Flag, FlagKind, OutcomeView, Summary,
    };

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn outcome(
        id: &str,
        track: &'static str,
        stage: &'static str,
        state: OutcomeState,
        verification: Verification,
    ) -> OutcomeView {
        OutcomeView {
            outcome_id: OutcomeId::parse(id).unwrap(),
            track,
            title: format!("title of {id}"),
            stage,
            stage_since: date("2020-01-01"),
            highest_stage: Some(stage),
            state,
            expected: Some(ExpectedView {
                stage: "adopted",
                by: date("2021-01-01"),
                date_source: DateSource::Explicit,
            }),
            verification,
            evidence_count: 0,
            event_count: 1,
            last_event_on: date("2020-01-01"),
        }
    }

    fn status(
        action: &str,
        country: &str,
        outcomes: Vec<OutcomeView>,
        flags: Vec<(&str, FlagKind)>,
    ) -> ActionStatus {
        let mut summary = Summary::default();
        outcomes.iter().for_each(|o| summary.count(o.state));
        ActionStatus {
            view: ActionView {
                action_id: ActionId::parse(action).unwrap(),
                country: Country::parse(country).unwrap(),
                title: Some(format!("title of {action}")),
                registered: true,
                closed: false,
                event_count: outcomes.len() as u32,
                last_seq: 1,
                last_event_on: date("2020-01-01"),
                outcomes,
                summary,
                registered_on: Some(date("2019-01-01")),
            },
            flags: flags
                .into_iter()
                .map(|(outcome, flag)| Flag {
                    outcome_id: Some(OutcomeId::parse(outcome).unwrap()),
                    flag,
                    detail: format!("{} detail", flag.as_str()),
                })
                .collect(),
            reference_date: date("2026-10-01"),
        }
    }

    fn scope(country: Option<&str>) -> ReviewScope {
        ReviewScope {
            as_of: date("2026-10-01"),
            until_seq: 42,
            country: country.map(|c| Country::parse(c).unwrap()),
        }
    }

    fn sample() -> Vec<ActionStatus> {
        vec![
            status(
                "MIEUX-TH-0001",
                "TH",
                vec![
                    outcome(
                        "law",
                        "legislation",
                        "pending",
                        OutcomeState::InProgress,
                        Verification::Reported,
                    ),
                    outcome(
                        "net",
                        "network",
                        "sustained",
                        OutcomeState::Sustained,
                        Verification::Verified,
                    ),
                ],
                vec![("law", FlagKind::Stale), ("law", FlagKind::Overdue)],
            ),
            status(
                "MIEUX-LA-0002",
                "LA",
                vec![
                    outcome(
                        "group",
                        "mechanism",
                        "established",
                        OutcomeState::Achieved,
                        Verification::Disputed,
                    ),
                    outcome(
                        "habit",
                        "practice",
                        "lapsed",
                        OutcomeState::Regressed,
                        Verification::Reported,
                    ),
                ],
                vec![
                    ("habit", FlagKind::Regressed),
                    ("group", FlagKind::Disputed),
                ],
            ),
        ]
    }

    #[test]
    fn totals_count_actions_outcomes_states_and_verifications() {
        let report = build_report("r".into(), &scope(None), None, sample());
        assert_eq!(
            report.totals,
            Totals {
                actions: 2,
                outcomes: 4,
                in_progress: 1,
                achieved: 1,
                sustained: 1,
                regressed: 1,
                verified: 1,
                disputed: 1,
                reported: 2
            }
        );
        assert_eq!(report.by_country["TH"].outcomes, 2);
        assert_eq!(report.by_country["LA"].regressed, 1);
        assert_eq!(
            report.by_track["network"],
            Totals {
                actions: 1,
                outcomes: 1,
                sustained: 1,
                verified: 1,
                ..Totals::default()
            }
        );
        assert_eq!(report.until_seq, 42);
    }

    #[test]
    fn findings_are_every_flag_sorted_by_action_outcome_and_flag() {
        let report = build_report("r".into(), &scope(None), None, sample());
        let keys: Vec<(&str, &str, &str)> = report
            .findings
            .iter()
            .map(|f| {
                (
                    f.action_id.as_str(),
                    f.outcome_id.as_ref().unwrap().as_str(),
                    f.flag.as_str(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("MIEUX-LA-0002", "group", "disputed"),
                ("MIEUX-LA-0002", "habit", "regressed"),
                ("MIEUX-TH-0001", "law", "overdue"),
                ("MIEUX-TH-0001", "law", "stale"),
            ]
        );
        assert_eq!(
            report.findings[0].outcome_title.as_deref(),
            Some("title of group")
        );
    }

    #[test]
    fn highlights_are_the_achieved_and_sustained_outcomes() {
        let report = build_report("r".into(), &scope(None), None, sample());
        let highlights: Vec<&str> = report
            .highlights
            .iter()
            .map(|h| h.outcome_id.as_str())
            .collect();
        assert_eq!(highlights, vec!["group", "net"]);
    }

    #[test]
    fn a_country_scope_keeps_only_that_country() {
        let report = build_report("r".into(), &scope(Some("TH")), None, sample());
        assert_eq!(report.totals.actions, 1);
        assert_eq!(report.findings.len(), 2);
        assert!(report.by_country.keys().all(|c| c == "TH"));
    }

    #[test]
    fn the_same_inputs_give_the_same_report_in_any_order() {
        let mut reversed = sample();
        reversed.reverse();
        let a = build_report("r".into(), &scope(None), None, sample());
        let b = build_report("r".into(), &scope(None), None, reversed);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    #[test]
    fn the_markdown_report_groups_findings_by_flag_with_titles() {
        let markdown = render_markdown(&build_report("r".into(), &scope(None), None, sample()));
        assert!(markdown.contains("### overdue"));
        assert!(markdown.contains("title of MIEUX-TH-0001 — title of law (`law`)"));
        assert!(markdown.contains("| TH | 1 | 2 |"));
        assert!(markdown.contains("## Highlights"));
    }

    #[test]
    fn a_title_in_the_markdown_report_is_text_not_markup() {
        let mut report = build_report("r".into(), &scope(None), None, sample());
        let typed = "<img src=x onerror=alert(1)> | broken | table\n## Fake heading";
        for finding in &mut report.findings {
            finding.action_title = Some(typed.into());
        }
        let markdown = render_markdown(&report);
        let raw_html = markdown
            .char_indices()
            .any(|(i, c)| c == '<' && !markdown[..i].ends_with('\\'));
        assert!(!raw_html, "{markdown}");
        assert!(!markdown.contains("\n## Fake heading"), "{markdown}");
        assert!(markdown.contains("\\<img src=x onerror=alert\\(1\\)\\> \\| broken"));
    }
}

/// What changed since the previous review of the same scope (CONTRACT.md §5.1). A finding is the
/// same finding when its Action, outcome and flag match (its detail, "… 40 days ago", moves on
/// by itself); a highlight is the same when its Action, outcome, stage and state match, so an
/// outcome that went from achieved to sustained is one highlight removed and one added.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReviewChanges {
    pub review_id: String,
    pub previous_review_id: Option<String>,
    pub findings: FindingChanges,
    pub highlights: HighlightChanges,
    /// Each total as `[previous, now]` (`previous` null without a previous review).
    pub totals: BTreeMap<String, [Option<u32>; 2]>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FindingChanges {
    pub added: Vec<Finding>,
    pub resolved: Vec<Finding>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HighlightChanges {
    pub added: Vec<Highlight>,
    pub removed: Vec<Highlight>,
}

/// `now` against `previous` (the review of the same scope just before it in the log, if any).
pub fn changes(previous: Option<&ReviewReport>, now: &ReviewReport) -> ReviewChanges {
    use std::collections::HashSet;
    fn only<'a, T: Clone, K: std::hash::Hash + Eq + 'a>(
        these: &'a [T],
        those: &'a [T],
        key: impl Fn(&'a T) -> K,
    ) -> Vec<T> {
        let known: HashSet<K> = those.iter().map(&key).collect();
        these
            .iter()
            .filter(|item| !known.contains(&key(item)))
            .cloned()
            .collect()
    }
    let finding = |f: &Finding| (f.action_id.clone(), f.outcome_id.clone(), f.flag.clone());
    let highlight = |h: &Highlight| {
        (
            h.action_id.clone(),
            h.outcome_id.clone(),
            h.stage.clone(),
            h.state,
        )
    };
    let (before_findings, before_highlights) =
        previous.map_or((&[][..], &[][..]), |p| (&p.findings[..], &p.highlights[..]));
    let before = previous.map(|p| p.totals.named());
    let totals = now
        .totals
        .named()
        .into_iter()
        .enumerate()
        .map(|(i, (name, count))| (name.to_owned(), [before.map(|b| b[i].1), Some(count)]))
        .collect();
    ReviewChanges {
        review_id: now.review_id.clone(),
        previous_review_id: previous.map(|p| p.review_id.clone()),
        findings: FindingChanges {
            added: only(&now.findings, before_findings, finding),
            resolved: only(before_findings, &now.findings, finding),
        },
        highlights: HighlightChanges {
            added: only(&now.highlights, before_highlights, highlight),
            removed: only(before_highlights, &now.highlights, highlight),
        },
        totals,
    }
}

/// What changed since the previous review, as Markdown for a person.
pub fn render_changes_markdown(changes: &ReviewChanges) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "# What changed: review {}\n", changes.review_id);
    match &changes.previous_review_id {
        Some(previous) => {
            let _ = writeln!(
                out,
                "Since the previous review of the same scope, {previous}.\n"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "No earlier review of the same scope: every finding is new.\n"
            );
        }
    }
    let _ = writeln!(out, "## Totals\n\n| | before | now |\n|---|---:|---:|");
    for (name, [before, now]) in &changes.totals {
        let show = |n: &Option<u32>| n.map_or("–".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            name.replace('_', " "),
            show(before),
            show(now)
        );
    }
    out.push('\n');
    let finding_line = |f: &Finding| {
        format!(
            "- {} {}{}: {} — {}",
            f.flag.replace('_', " "),
            f.action_id,
            f.outcome_id
                .as_ref()
                .map_or(String::new(), |o| format!(" / {o}")),
            markdown_text(
                f.outcome_title
                    .as_deref()
                    .or(f.action_title.as_deref())
                    .unwrap_or("")
            ),
            markdown_text(&f.detail)
        )
    };
    let highlight_line = |h: &Highlight| {
        format!(
            "- {} / {}: {} — {} {} since {}",
            h.action_id,
            h.outcome_id,
            markdown_text(&h.outcome_title),
            h.track.replace('_', " "),
            h.stage.replace('_', " "),
            h.stage_since
        )
    };
    for (heading, lines) in [
        (
            "New findings",
            changes
                .findings
                .added
                .iter()
                .map(finding_line)
                .collect::<Vec<_>>(),
        ),
        (
            "Findings resolved",
            changes.findings.resolved.iter().map(finding_line).collect(),
        ),
        (
            "New highlights",
            changes
                .highlights
                .added
                .iter()
                .map(highlight_line)
                .collect(),
        ),
        (
            "Highlights no longer there",
            changes
                .highlights
                .removed
                .iter()
                .map(highlight_line)
                .collect(),
        ),
    ] {
        let _ = writeln!(out, "## {heading}\n");
        if lines.is_empty() {
            let _ = writeln!(out, "None.\n");
            continue;
        }
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    out
}
