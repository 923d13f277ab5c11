//! The command line (CONTRACT.md §7): clap definitions only.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "impact",
    version,
    about = "Tracks the longer-term results of development cooperation Actions"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service (embedded bus unless --nats or nats.url is set).
    Serve {
        #[arg(long, env = "IMPACT_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "IMPACT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long, env = "IMPACT_HTTP_ADDR")]
        http: Option<String>,
        /// NATS server URL, or several of a cluster separated by commas.
        #[arg(long, env = "IMPACT_NATS_URL")]
        nats: Option<String>,
        /// The same, from the environment's plural name.
        #[arg(long, env = "IMPACT_NATS_URLS", hide = true)]
        nats_urls: Option<String>,
        /// A NATS credentials file (JWT + nkey seed), in place of nats.creds_file.
        #[arg(long, env = "IMPACT_NATS_CREDS")]
        nats_creds: Option<PathBuf>,
        /// Load the built-in example follow-ups when the store is empty.
        #[arg(long)]
        demo: bool,
    },
    /// Submit events from JSON or NDJSON files (- for stdin), validated locally first.
    Submit {
        #[arg(long, env = "IMPACT_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "IMPACT_TOKEN")]
        token: Option<String>,
        /// Keep events that could not be delivered here, and send them first next time.
        #[arg(long)]
        outbox: Option<PathBuf>,
        #[arg(required = false)]
        files: Vec<PathBuf>,
    },
    /// One Action's status view.
    Status(ReadArgs),
    /// One Action's timeline.
    History(ReadArgs),
    /// Run a review now and print its report.
    Review {
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long)]
        country: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        #[command(flatten)]
        source: Source,
    },
    /// The outcomes in scope (CONTRACT.md §9): the same bytes as GET /v1/exports/outcomes.csv,
    /// outcomes.xlsx or iati.xml.
    Outcomes {
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long)]
        until_seq: Option<u64>,
        #[arg(long)]
        known_at: Option<String>,
        /// One country's Actions only.
        #[arg(long)]
        country: Option<String>,
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        source: Source,
    },
    /// Drop every view and rebuild it from the log.
    Rebuild {
        #[arg(long, env = "IMPACT_DATA_DIR")]
        data_dir: PathBuf,
        /// The configuration whose `server.min_free_mib` applies (default 64).
        #[arg(long, env = "IMPACT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Write the whole log as NDJSON.
    Export {
        #[arg(long, env = "IMPACT_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Append the events of an export that are not stored yet.
    Import {
        #[arg(long, env = "IMPACT_DATA_DIR")]
        data_dir: PathBuf,
        /// The configuration whose `server.min_free_mib` applies (default 64).
        #[arg(long, env = "IMPACT_CONFIG")]
        config: Option<PathBuf>,
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    pub action_id: String,
    #[arg(long)]
    pub as_of: Option<String>,
    #[arg(long)]
    pub until_seq: Option<u64>,
    #[arg(long)]
    pub known_at: Option<String>,
    #[command(flatten)]
    pub source: Source,
    /// Print exactly the JSON the HTTP API gives for the same read.
    #[arg(long)]
    pub json: bool,
}

/// Where a read goes: a running server, or a stopped service's data directory.
#[derive(Args, Debug)]
pub struct Source {
    #[arg(long, env = "IMPACT_SERVER", conflicts_with = "data_dir")]
    pub server: Option<String>,
    #[arg(long, env = "IMPACT_TOKEN")]
    pub token: Option<String>,
    #[arg(long, env = "IMPACT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, env = "IMPACT_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
}

/// The formats of `impact outcomes`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
    /// IATI Activity Standard 2.03 XML (needs the configuration's `[iati]`).
    Iati,
}
