//! `impact`: parse the command line, start tracing, dispatch.

use anyhow::Context;
use clap::Parser;
use impact::cli::{Cli, Command, ExportFormat, Format, ReadArgs};
use impact::client::{self, Client};
use impact::commands;
use impact::config::{Config, Overrides};
use serde_json::Value;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let result = runtime.block_on(run(cli));
    // For the benchmarks: the process's peak resident memory, as the kernel counted it.
    if std::env::var_os("IMPACT_REPORT_PEAK_RSS").is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(peak) = status.lines().find_map(|line| line.strip_prefix("VmHWM:")) {
            eprintln!("peak RSS {}", peak.trim());
        }
    }
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("impact: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            data_dir,
            http,
            nats,
            nats_urls,
            nats_creds,
            demo,
        } => {
            let config = Config::load(&Overrides {
                config_file: config,
                data_dir,
                http_addr: http,
                nats_url: nats.or(nats_urls),
                nats_creds,
            })?;
            impact::app::serve(config, demo).await?;
        }
        Command::Submit {
            server,
            token,
            outbox,
            files,
        } => {
            let events = client::read_events(&files)?;
            let (valid, problems) = client::validate_locally(events);
            for problem in &problems {
                eprintln!("not sent, invalid: {problem}");
            }
            let client = Client::new(&server, token)?;
            let report = client.submit(valid, outbox.as_deref()).await?;
            eprintln!(
                "{} accepted, {} duplicate, {} rejected, {} invalid locally, {} kept in the outbox, {} not delivered",
                report.accepted,
                report.duplicate,
                report.rejected,
                problems.len(),
                report.queued,
                report.undelivered
            );
            if report.rejected + report.queued + report.undelivered + problems.len() > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Status(args) => print_read(&args, "", print_status_table).await?,
        Command::History(args) => print_read(&args, "/events", print_history_table).await?,
        Command::Review {
            as_of,
            country,
            format,
            source,
        } => {
            let markdown = format == Format::Markdown;
            match &source.server {
                Some(server) => {
                    let client = Client::new(server, source.token.clone())?;
                    let accept = if markdown {
                        "text/markdown"
                    } else {
                        "application/json"
                    };
                    let body = client
                        .post_json(
                            "/v1/reviews",
                            &client::review_request(as_of.as_deref(), country.as_deref()),
                            accept,
                        )
                        .await?;
                    if markdown {
                        print!("{body}");
                    } else {
                        let value: Value = serde_json::from_str(&body)?;
                        println!("{}", serde_json::to_string_pretty(&value)?);
                    }
                }
                None => {
                    let config =
                        commands::offline_config(source.config.clone(), source.data_dir.clone())?;
                    let filters = commands::parse_filters(as_of.as_deref(), None, None)?;
                    let country = country
                        .as_deref()
                        .map(impact::domain::ids::Country::parse_assigned)
                        .transpose()?;
                    let report = commands::review(config, filters.as_of, country).await?;
                    commands::print_review(&report, markdown)?;
                }
            }
        }
        Command::Outcomes {
            format,
            as_of,
            until_seq,
            known_at,
            country,
            out,
            source,
        } => {
            let bytes = match &source.server {
                Some(server) => {
                    let client = Client::new(server, source.token.clone())?;
                    let query = client::query_string(&[
                        ("as_of", as_of),
                        ("until_seq", until_seq.map(|n| n.to_string())),
                        ("known_at", known_at),
                        ("country", country),
                    ]);
                    let file = match format {
                        ExportFormat::Csv => "outcomes.csv",
                        ExportFormat::Xlsx => "outcomes.xlsx",
                        ExportFormat::Iati => "iati.xml",
                    };
                    client
                        .get_bytes(&format!("/v1/exports/{file}{query}"))
                        .await?
                }
                None => {
                    let config =
                        commands::offline_config(source.config.clone(), source.data_dir.clone())?;
                    let filters =
                        commands::parse_filters(as_of.as_deref(), until_seq, known_at.as_deref())?;
                    let country = country
                        .as_deref()
                        .map(impact::domain::ids::Country::parse_assigned)
                        .transpose()?;
                    commands::outcomes(&config, &filters, country, format)?
                }
            };
            match out {
                Some(path) => std::fs::write(&path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
        }
        Command::Rebuild { data_dir, config } => {
            let reserve = commands::offline_config(config, Some(data_dir.clone()))?.min_free_bytes;
            let folded = tokio::task::spawn_blocking(move || {
                commands::rebuild_within(&data_dir, true, commands::REBUILD_MEMORY_BYTES, reserve)
            })
            .await??;
            eprintln!("rebuilt every view from {folded} events");
        }
        Command::Export { data_dir, out } => {
            let count =
                tokio::task::spawn_blocking(move || commands::export(&data_dir, out.as_deref()))
                    .await??;
            eprintln!("exported {count} events");
        }
        Command::Import {
            data_dir,
            config,
            file,
        } => {
            let reserve = commands::offline_config(config, Some(data_dir.clone()))?.min_free_bytes;
            let counts = tokio::task::spawn_blocking(move || {
                commands::import_reserved(&data_dir, &file, reserve)
            })
            .await??;
            eprintln!(
                "imported {} events, {} already stored, {} rejected",
                counts.applied, counts.duplicate, counts.rejected
            );
            if counts.rejected > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A read from a server or a data directory; `--json` prints the API's JSON as it is.
async fn print_read(args: &ReadArgs, suffix: &str, table: fn(&Value)) -> anyhow::Result<()> {
    let body = match &args.source.server {
        Some(server) => {
            let client = Client::new(server, args.source.token.clone())?;
            let query = client::query_string(&[
                ("as_of", args.as_of.clone()),
                ("until_seq", args.until_seq.map(|n| n.to_string())),
                ("known_at", args.known_at.clone()),
            ]);
            client
                .get_text(
                    &format!("/v1/actions/{}{suffix}{query}", args.action_id),
                    "application/json",
                )
                .await?
        }
        None => {
            let config =
                commands::offline_config(args.source.config.clone(), args.source.data_dir.clone())?;
            let filters = commands::parse_filters(
                args.as_of.as_deref(),
                args.until_seq,
                args.known_at.as_deref(),
            )?;
            if suffix.is_empty() {
                commands::status_json(&config, &args.action_id, &filters)?
            } else {
                commands::history_json(&config, &args.action_id, &filters)?
            }
        }
    };
    if args.json {
        println!("{body}");
    } else {
        table(&serde_json::from_str(&body)?);
    }
    Ok(())
}

/// A value as one line of terminal text: what someone typed cannot move the cursor, colour
/// the screen or start a line of the table (control and bidirectional-override characters
/// become spaces or go).
fn text(value: &Value) -> String {
    let raw = match value {
        Value::Null => return "—".into(),
        Value::String(s) => s.as_str(),
        other => return other.to_string(),
    };
    raw.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => None,
            c => Some(c),
        })
        .collect()
}

fn print_status_table(view: &Value) {
    println!(
        "{}  {}  {}",
        text(&view["action_id"]),
        text(&view["country"]),
        text(&view["title"])
    );
    println!(
        "registered: {}  closed: {}  events: {}  last seq: {}  last report: {}  reference date: {}",
        view["registered"],
        view["closed"],
        view["event_count"],
        view["last_seq"],
        text(&view["last_event_on"]),
        text(&view["reference_date"])
    );
    println!();
    println!(
        "{:<32} {:<12} {:<24} {:<11} {:<12} {:<36} VERIFICATION",
        "OUTCOME", "TRACK", "STAGE", "SINCE", "STATE", "EXPECTED"
    );
    for outcome in view["outcomes"].as_array().into_iter().flatten() {
        let expected = match &outcome["expected"] {
            Value::Null => "—".to_owned(),
            e => format!(
                "{} by {} ({})",
                text(&e["stage"]),
                text(&e["by"]),
                text(&e["date_source"])
            ),
        };
        println!(
            "{:<32} {:<12} {:<24} {:<11} {:<12} {:<36} {}",
            text(&outcome["outcome_id"]),
            text(&outcome["track"]),
            text(&outcome["stage"]),
            text(&outcome["stage_since"]),
            text(&outcome["state"]),
            expected,
            text(&outcome["verification"])
        );
    }
    let flags = view["flags"].as_array().cloned().unwrap_or_default();
    if !flags.is_empty() {
        println!("\nFLAGS");
        for flag in flags {
            println!(
                "  {:<12} {:<32} {}",
                text(&flag["flag"]),
                text(&flag["outcome_id"]),
                text(&flag["detail"])
            );
        }
    }
}

fn print_history_table(history: &Value) {
    println!("{}", text(&history["action_id"]));
    println!(
        "{:>7} {:<11} {:<32} {:<28} NOTE",
        "SEQ", "OCCURRED", "TYPE", "OUTCOME"
    );
    for event in history["events"].as_array().into_iter().flatten() {
        let data = &event["data"];
        let note = [
            &data["title"],
            &data["note"],
            &data["reason"],
            &data["summary"],
        ]
        .into_iter()
        .find(|v| v.is_string())
        .map(text)
        .unwrap_or_default();
        let retracted = if event["retracted"] == Value::Bool(true) {
            " [retracted]"
        } else {
            ""
        };
        println!(
            "{:>7} {:<11} {:<32} {:<28} {note}{retracted}",
            text(&event["seq"]),
            text(&event["occurred_on"]),
            text(&event["type"]),
            text(&event["outcome_id"]),
        );
    }
}
