//! Configuration (CONTRACT.md §8): flags, then environment, then the TOML file, then defaults.
//! Clap merges flags and environment; this module lays the file and the defaults beneath them.
//! Every limit is a named field.

use crate::domain::fold::ViewRules;
use crate::domain::ids::Country;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const HTTP_ADDR_DEFAULT: &str = "127.0.0.1:8080";
pub const DATA_DIR_DEFAULT: &str = "./impact-data";
pub const STREAM_DEFAULT: &str = "IMPACT";
pub const SCHEDULE_DEFAULT: &str = "0 3 1 */3 *";
/// The free space the store's filesystem keeps: below it, writes are refused (CONTRACT §11).
pub const MIN_FREE_MIB_DEFAULT: u64 = 64;
/// Connections served at once, unless the open-files limit allows fewer (`server.max_connections`).
pub const MAX_CONNECTIONS_DEFAULT: usize = 10_000;
/// NDJSON streams of the log open at once (`server.max_streams`).
pub const MAX_STREAMS_DEFAULT: usize = 64;

/// Descriptors kept for everything but client connections: sled's files, the broker, the
/// over-cap answers, the restart's exec.
const FILES_BESIDES_CONNECTIONS: u64 = 256;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    nats: Option<NatsSection>,
    #[serde(default)]
    review: ReviewSection,
    #[serde(default)]
    principals: Vec<PrincipalSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    http_addr: Option<String>,
    data_dir: Option<PathBuf>,
    cache_mib: Option<u64>,
    min_free_mib: Option<u64>,
    max_connections: Option<usize>,
    max_streams: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsSection {
    url: Option<String>,
    stream: Option<String>,
    replicas: Option<usize>,
    duplicate_window_secs: Option<u64>,
    publish_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewSection {
    schedule: Option<String>,
    stale_after_days: Option<i64>,
    unverified_after_days: Option<i64>,
    default_expectation_days: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalSection {
    name: String,
    role: String,
    #[serde(default)]
    countries: Vec<String>,
    token_sha256: String,
}

pub use crate::domain::rights::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub countries: Vec<Country>,
    /// Lowercase hex SHA-256 of the bearer token.
    pub token_sha256: String,
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    pub stream: String,
    pub replicas: usize,
    /// JetStream's `Nats-Msg-Id` dedupe window.
    pub duplicate_window_secs: u64,
    /// A publish not acknowledged within this is answered `503`.
    pub publish_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub cache_bytes: u64,
    /// `server.min_free_mib` in bytes: the free-space reserve of the store's filesystem.
    pub min_free_bytes: u64,
    /// `server.max_connections`; `None`: the default, within the open-files limit.
    pub max_connections: Option<usize>,
    /// `server.max_streams`.
    pub max_streams: usize,
    pub nats: Option<NatsConfig>,
    /// `None`: scheduled reviews are off.
    pub review_schedule: Option<String>,
    pub rules: ViewRules,
    pub principals: Vec<Principal>,
}

/// What flags and environment said (clap has already merged those two).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub http_addr: Option<String>,
    pub nats_url: Option<String>,
}

impl Config {
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let http_addr_text = overrides
            .http_addr
            .clone()
            .or(file.server.http_addr)
            .unwrap_or_else(|| HTTP_ADDR_DEFAULT.to_owned());
        let http_addr: SocketAddr = http_addr_text
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("http_addr {http_addr_text:?}: {e}")))?;
        let data_dir = overrides
            .data_dir
            .clone()
            .or(file.server.data_dir)
            .unwrap_or_else(|| DATA_DIR_DEFAULT.into());
        let nats_section = file.nats.unwrap_or_default();
        let nats_url = overrides.nats_url.clone().or(nats_section.url);
        let nats = nats_url.map(|url| NatsConfig {
            url,
            stream: nats_section
                .stream
                .unwrap_or_else(|| STREAM_DEFAULT.to_owned()),
            replicas: nats_section.replicas.unwrap_or(1),
            duplicate_window_secs: nats_section.duplicate_window_secs.unwrap_or(120),
            publish_timeout_ms: nats_section.publish_timeout_ms.unwrap_or(5_000),
        });
        let schedule = file
            .review
            .schedule
            .unwrap_or_else(|| SCHEDULE_DEFAULT.to_owned());
        let review_schedule = (schedule.trim() != "off").then_some(schedule);
        let defaults = ViewRules::default();
        let rules = ViewRules {
            default_expectation_days: file
                .review
                .default_expectation_days
                .unwrap_or(defaults.default_expectation_days),
            stale_after_days: file
                .review
                .stale_after_days
                .unwrap_or(defaults.stale_after_days),
            unverified_after_days: file
                .review
                .unverified_after_days
                .unwrap_or(defaults.unverified_after_days),
            no_outcomes_after_days: defaults.no_outcomes_after_days,
        };
        let principals = file
            .principals
            .into_iter()
            .map(principal)
            .collect::<Result<Vec<_>, _>>()?;
        let config = Config {
            http_addr,
            data_dir,
            cache_bytes: file
                .server
                .cache_mib
                .map_or(crate::store::CACHE_BYTES_DEFAULT, |mib| mib * 1024 * 1024),
            min_free_bytes: file.server.min_free_mib.unwrap_or(MIN_FREE_MIB_DEFAULT) << 20,
            max_connections: file.server.max_connections,
            max_streams: file.server.max_streams.unwrap_or(MAX_STREAMS_DEFAULT),
            nats,
            review_schedule,
            rules,
            principals,
        };
        config.check()?;
        Ok(config)
    }

    /// With no principal, every request acts as admin: only loopback may reach such a server.
    fn check(&self) -> Result<(), ConfigError> {
        if self.principals.is_empty() && !self.http_addr.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {}: authentication is off (no [[principals]] configured), \
                 so only a loopback address such as 127.0.0.1 is allowed; configure principals to listen elsewhere",
                self.http_addr
            )));
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::Invalid(
                "server.max_connections must be at least 1".into(),
            ));
        }
        if self.max_streams == 0 {
            return Err(ConfigError::Invalid(
                "server.max_streams must be at least 1".into(),
            ));
        }
        if let Some(schedule) = &self.review_schedule {
            crate::review::parse_schedule(schedule).map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }

    /// The connections to serve at once, given that the process may open `open_files`: a
    /// configured cap that does not fit is an error naming the key; the default shrinks to fit.
    pub fn connection_cap(&self, open_files: u64) -> Result<usize, ConfigError> {
        let fits = open_files.saturating_sub(FILES_BESIDES_CONNECTIONS) as usize;
        match self.max_connections {
            Some(cap) if cap > fits => Err(ConfigError::Invalid(format!(
                "server.max_connections = {cap} does not fit the open-files limit of {open_files} \
                 (RLIMIT_NOFILE; {FILES_BESIDES_CONNECTIONS} are kept for the store and the \
                 broker): lower server.max_connections to {fits} or less, or raise the limit"
            ))),
            Some(cap) => Ok(cap),
            None if fits == 0 => Err(ConfigError::Invalid(format!(
                "the open-files limit of {open_files} (RLIMIT_NOFILE) leaves no descriptor for \
                 a connection once {FILES_BESIDES_CONNECTIONS} are kept for the store and the \
                 broker: raise the limit (server.max_connections cannot help)"
            ))),
            None => Ok(MAX_CONNECTIONS_DEFAULT.min(fits)),
        }
    }

    pub fn auth_enabled(&self) -> bool {
        !self.principals.is_empty()
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn principal(section: PrincipalSection) -> Result<Principal, ConfigError> {
    let role = match section.role.as_str() {
        "field_office" => Role::FieldOffice,
        "evaluator" => Role::Evaluator,
        "admin" => Role::Admin,
        other => {
            return Err(ConfigError::Invalid(format!(
                "principal {}: unknown role {other:?}",
                section.name
            )))
        }
    };
    let countries = section
        .countries
        .iter()
        .map(|country| {
            Country::parse(country)
                .map_err(|e| ConfigError::Invalid(format!("principal {}: {e}", section.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let token_sha256 = section.token_sha256.to_ascii_lowercase();
    if token_sha256.len() != 64 || !token_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::Invalid(format!(
            "principal {}: token_sha256 must be 64 hex digits (the SHA-256 of the token, never the token)",
            section.name
        )));
    }
    if role == Role::FieldOffice && countries.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "principal {}: a field_office needs countries",
            section.name
        )));
    }
    Ok(Principal {
        name: section.name,
        role,
        countries,
        token_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = write("[server]\nhttp_addr = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n[review]\nstale_after_days = 10\n");
        let overrides = Overrides {
            config_file: Some(file.path().into()),
            http_addr: Some("127.0.0.1:9001".into()),
            ..Default::default()
        };
        let config = Config::load(&overrides).unwrap();
        assert_eq!(config.http_addr.port(), 9001);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.rules.stale_after_days, 10);
        assert_eq!(config.rules.unverified_after_days, 180);
        assert!(config.nats.is_none());
        assert_eq!(config.review_schedule.as_deref(), Some(SCHEDULE_DEFAULT));
    }

    #[test]
    fn without_principals_only_loopback_is_allowed() {
        let overrides = Overrides {
            http_addr: Some("0.0.0.0:8080".into()),
            ..Default::default()
        };
        let error = Config::load(&overrides).unwrap_err().to_string();
        assert!(error.contains("authentication is off"), "{error}");
    }

    #[test]
    fn principals_are_configured_by_token_hash() {
        let file = write(&format!(
            "[server]\nhttp_addr = \"0.0.0.0:8080\"\n[review]\nschedule = \"off\"\n[[principals]]\nname = \"fo-bangkok\"\nrole = \"field_office\"\ncountries = [\"TH\"]\ntoken_sha256 = \"{}\"\n",
            "ab".repeat(32)
        ));
        let config = Config::load(&Overrides {
            config_file: Some(file.path().into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.principals[0].role, Role::FieldOffice);
        assert!(config.review_schedule.is_none());
        let bad =
            write("[[principals]]\nname = \"x\"\nrole = \"admin\"\ntoken_sha256 = \"secret\"\n");
        assert!(Config::load(&Overrides {
            config_file: Some(bad.path().into()),
            ..Default::default()
        })
        .is_err());
    }
}
