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
/// How long a browser session lasts (`server.session_hours`).
pub const SESSION_HOURS_DEFAULT: u64 = 12;

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
    iati: Option<IatiSection>,
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
    session_hours: Option<u64>,
    cookie_secure: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsSection {
    url: Option<String>,
    urls: Option<Vec<String>>,
    stream: Option<String>,
    replicas: Option<usize>,
    duplicate_window_secs: Option<u64>,
    publish_timeout_ms: Option<u64>,
    stall_ms: Option<u64>,
    creds_file: Option<PathBuf>,
    nkey_seed_file: Option<PathBuf>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    tls_ca_file: Option<PathBuf>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    inbox_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewSection {
    schedule: Option<String>,
    stale_after_days: Option<i64>,
    unverified_after_days: Option<i64>,
    default_expectation_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IatiSection {
    reporting_org_ref: Option<String>,
    reporting_org_name: Option<String>,
    /// A code, written as a number (`40`) or a string (`"40"`).
    reporting_org_type: Option<toml::Value>,
    identifier_prefix: Option<String>,
}

/// The IATI OrganisationType codes (codelist of the 2.03 standard).
const IATI_ORGANISATION_TYPES: [&str; 16] = [
    "10", "11", "15", "21", "22", "23", "24", "30", "40", "60", "70", "71", "72", "73", "80", "90",
];

/// The `[iati]` section (CONTRACT.md §9): who publishes the IATI export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IatiConfig {
    pub reporting_org_ref: String,
    pub reporting_org_name: String,
    /// An IATI OrganisationType code: `40` (multilateral) unless configured.
    pub reporting_org_type: String,
    /// Each activity's identifier is `<identifier_prefix>-<action_id>`.
    pub identifier_prefix: String,
}

impl IatiConfig {
    /// What `serve --demo` publishes as when the configuration names no reporting organisation.
    pub fn demo() -> IatiConfig {
        IatiConfig {
            reporting_org_ref: "XI-DEMO-IMPACT".into(),
            reporting_org_name: "Demonstration programme (impact serve --demo)".into(),
            reporting_org_type: "40".into(),
            identifier_prefix: "XI-DEMO-IMPACT".into(),
        }
    }
}

fn iati_config(section: IatiSection) -> Result<IatiConfig, ConfigError> {
    // An identifier of the standard: no spaces and no `/` (IATI identifiers go into URLs).
    let identifier = |key: &str, value: Option<String>| -> Result<String, ConfigError> {
        let value = value.ok_or_else(|| {
            ConfigError::Invalid(format!(
                "iati.{key} is missing: the [iati] section needs reporting_org_ref and reporting_org_name"
            ))
        })?;
        let value = value.trim().to_owned();
        let fits = !value.is_empty()
            && value.len() <= 100
            && value.chars().all(|c| c.is_ascii_graphic() && c != '/');
        match fits {
            true => Ok(value),
            false => Err(ConfigError::Invalid(format!(
                "iati.{key} = {value:?}: an IATI identifier such as \"XM-DAC-41301\" (1 to 100 \
                 letters, digits or punctuation, no spaces, no '/')"
            ))),
        }
    };
    let reporting_org_ref = identifier("reporting_org_ref", section.reporting_org_ref)?;
    let reporting_org_name =
        match section
            .reporting_org_name
            .map(|name| name.trim().to_owned())
        {
            Some(name) if !name.is_empty() && name.chars().count() <= 200 => name,
            Some(name) => {
                return Err(ConfigError::Invalid(format!(
                "iati.reporting_org_name = {name:?}: the organisation's name, 1 to 200 characters"
            )))
            }
            None => return Err(ConfigError::Invalid(
                "iati.reporting_org_name is missing: the [iati] section needs reporting_org_ref \
                 and reporting_org_name"
                    .into(),
            )),
        };
    let reporting_org_type = match section.reporting_org_type {
        None => "40".to_owned(),
        Some(toml::Value::Integer(code)) => code.to_string(),
        Some(toml::Value::String(code)) => code.trim().to_owned(),
        Some(other) => other.to_string(),
    };
    if !IATI_ORGANISATION_TYPES.contains(&reporting_org_type.as_str()) {
        return Err(ConfigError::Invalid(format!(
            "iati.reporting_org_type = {reporting_org_type}: an IATI OrganisationType code, one of {}",
            IATI_ORGANISATION_TYPES.join(", ")
        )));
    }
    let identifier_prefix = match section.identifier_prefix {
        None => reporting_org_ref.clone(),
        given => identifier("identifier_prefix", given)?,
    };
    Ok(IatiConfig {
        reporting_org_ref,
        reporting_org_name,
        reporting_org_type,
        identifier_prefix,
    })
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

/// A secret read from its file: never in the TOML, never printed (`Debug` shows no content).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How the service proves itself to NATS (CONTRACT.md §6.1): at most one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    /// A JWT + nkey seed credentials file's content.
    Creds(Secret),
    NkeySeed(Secret),
    UserPassword {
        user: String,
        password: Secret,
    },
    Token(Secret),
}

/// TLS to NATS: the servers verified with `ca_file` (else the system's roots), and a client
/// certificate when the servers ask for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTls {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// One server, or several of a cluster.
    pub urls: Vec<String>,
    pub auth: NatsAuth,
    pub tls: Option<NatsTls>,
    /// Reply subjects start with this (`_INBOX` by default), so permissions can keep them private.
    pub inbox_prefix: Option<String>,
    /// `/readyz` is `503` while the consumer has received nothing for this long although the
    /// stream holds messages after the checkpoint.
    pub stall_ms: u64,
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
    /// `server.session_hours`: how long a browser session lasts.
    pub session_hours: u64,
    /// `server.cookie_secure`: the session cookie is `Secure` (sent over HTTPS only).
    pub cookie_secure: bool,
    pub nats: Option<NatsConfig>,
    /// `None`: scheduled reviews are off.
    pub review_schedule: Option<String>,
    pub rules: ViewRules,
    pub principals: Vec<Principal>,
    /// `[iati]`; `None`: the IATI export is off (`serve --demo` fills in a demonstration one).
    pub iati: Option<IatiConfig>,
}

/// What flags and environment said (clap has already merged those two).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub http_addr: Option<String>,
    /// One URL, or several separated by commas (`--nats`, `IMPACT_NATS_URL`, `IMPACT_NATS_URLS`).
    pub nats_url: Option<String>,
    /// A credentials file (`IMPACT_NATS_CREDS`), in place of the file's `nats.creds_file`.
    pub nats_creds: Option<PathBuf>,
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
        let nats = nats_config(file.nats.unwrap_or_default(), overrides)?;
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
        let iati = file.iati.map(iati_config).transpose()?;
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
            session_hours: file.server.session_hours.unwrap_or(SESSION_HOURS_DEFAULT),
            cookie_secure: file.server.cookie_secure.unwrap_or(true),
            nats,
            review_schedule,
            rules,
            principals,
            iati,
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
        if self.session_hours == 0 || self.session_hours > 24 * 366 {
            return Err(ConfigError::Invalid(format!(
                "server.session_hours = {}: between 1 and {} hours",
                self.session_hours,
                24 * 366
            )));
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

/// The `[nats]` section under the flags and environment; `None` for the embedded bus.
fn nats_config(
    mut section: NatsSection,
    overrides: &Overrides,
) -> Result<Option<NatsConfig>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid(message);
    let urls: Vec<String> = match (&overrides.nats_url, &section.url, &section.urls) {
        (Some(flag), _, _) => flag.split(',').map(|u| u.trim().to_owned()).collect(),
        (None, Some(_), Some(_)) => {
            return Err(invalid(
                "nats.url and nats.urls are both set: keep one".into(),
            ))
        }
        (None, Some(url), None) => vec![url.clone()],
        (None, None, Some(urls)) => urls.clone(),
        (None, None, None) => return Ok(None),
    };
    if urls.is_empty() || urls.iter().any(String::is_empty) {
        return Err(invalid(
            "nats.urls: give at least one URL, none empty".into(),
        ));
    }
    for url in &urls {
        check_nats_url(url)?;
    }
    if let Some(creds) = &overrides.nats_creds {
        section.creds_file = Some(creds.clone());
    }
    let secret = |key: &str, path: &Path| -> Result<Secret, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(format!(
                "nats.{key} {}: cannot read it: {e}",
                path.display()
            ))
        })?;
        let text = text.trim().to_owned();
        if text.is_empty() {
            return Err(invalid(format!(
                "nats.{key} {}: the file is empty",
                path.display()
            )));
        }
        Ok(Secret(text))
    };
    let given: Vec<&str> = [
        ("creds_file", section.creds_file.is_some()),
        ("nkey_seed_file", section.nkey_seed_file.is_some()),
        (
            "user/password_file",
            section.user.is_some() || section.password_file.is_some(),
        ),
        ("token_file", section.token_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    if given.len() > 1 {
        return Err(invalid(format!(
            "nats: {} are all set; give at most one way to authenticate",
            given.join(", ")
        )));
    }
    let auth = if let Some(path) = &section.creds_file {
        let creds = secret("creds_file", path)?;
        async_nats::ConnectOptions::with_credentials(creds.expose()).map_err(|e| {
            invalid(format!(
                "nats.creds_file {}: not a credentials file: {e}",
                path.display()
            ))
        })?;
        NatsAuth::Creds(creds)
    } else if let Some(path) = &section.nkey_seed_file {
        let seed = secret("nkey_seed_file", path)?;
        nkeys::KeyPair::from_seed(seed.expose()).map_err(|e| {
            invalid(format!(
                "nats.nkey_seed_file {}: not an nkey seed: {e}",
                path.display()
            ))
        })?;
        NatsAuth::NkeySeed(seed)
    } else if let Some(user) = &section.user {
        let path = section.password_file.as_ref().ok_or_else(|| {
            invalid(
                "nats.user is set without nats.password_file (the password is read from a file)"
                    .into(),
            )
        })?;
        NatsAuth::UserPassword {
            user: user.clone(),
            password: secret("password_file", path)?,
        }
    } else if section.password_file.is_some() {
        return Err(invalid(
            "nats.password_file is set without nats.user".into(),
        ));
    } else if let Some(path) = &section.token_file {
        NatsAuth::Token(secret("token_file", path)?)
    } else {
        NatsAuth::None
    };
    let readable = |key: &str, path: &PathBuf| -> Result<PathBuf, ConfigError> {
        std::fs::File::open(path)
            .map(|_| path.clone())
            .map_err(|e| {
                invalid(format!(
                    "nats.{key} {}: cannot read it: {e}",
                    path.display()
                ))
            })
    };
    let client_cert = match (&section.tls_cert_file, &section.tls_key_file) {
        (Some(cert), Some(key)) => Some((
            readable("tls_cert_file", cert)?,
            readable("tls_key_file", key)?,
        )),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "nats.tls_cert_file is set without nats.tls_key_file".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "nats.tls_key_file is set without nats.tls_cert_file".into(),
            ))
        }
    };
    let ca_file = section
        .tls_ca_file
        .as_ref()
        .map(|path| readable("tls_ca_file", path))
        .transpose()?;
    let tls_wanted = ca_file.is_some()
        || client_cert.is_some()
        || urls.iter().any(|url| url.starts_with("tls://"));
    let tls = tls_wanted.then_some(NatsTls {
        ca_file,
        client_cert,
    });
    if let Some(prefix) = &section.inbox_prefix {
        let valid = !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !prefix.starts_with('.')
            && !prefix.ends_with('.');
        if !valid {
            return Err(invalid(format!(
                "nats.inbox_prefix {prefix:?}: letters, digits, '_', '-' and inner '.' only"
            )));
        }
    }
    let replicas = section.replicas.unwrap_or(1);
    if !(1..=5).contains(&replicas) {
        return Err(invalid(format!(
            "nats.replicas = {replicas}: JetStream takes 1 to 5"
        )));
    }
    Ok(Some(NatsConfig {
        urls,
        auth,
        tls,
        inbox_prefix: section.inbox_prefix,
        stall_ms: section.stall_ms.unwrap_or(15_000),
        stream: section.stream.unwrap_or_else(|| STREAM_DEFAULT.to_owned()),
        replicas,
        duplicate_window_secs: section.duplicate_window_secs.unwrap_or(120),
        publish_timeout_ms: section.publish_timeout_ms.unwrap_or(5_000),
    }))
}

/// A NATS URL names a server, never credentials (§6.1).
fn check_nats_url(url: &str) -> Result<(), ConfigError> {
    let rest = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "nats" | "tls"))
        .map(|(_, rest)| rest)
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "nats.urls: {:?} is not a nats:// or tls:// URL",
                redact(url)
            ))
        })?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.contains('@') {
        return Err(ConfigError::Invalid(format!(
            "nats.urls: {:?} carries credentials; put them in nats.creds_file, nats.nkey_seed_file, \
             nats.user + nats.password_file or nats.token_file instead",
            redact(url)
        )));
    }
    Ok(())
}

/// A URL with anything before an `@` blanked, for messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_owned(),
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

    fn nats_error(section: &str) -> String {
        let file = write(&format!("[nats]\n{section}\n"));
        Config::load(&Overrides {
            config_file: Some(file.path().into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn nats_connection_keys_are_checked_at_load_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret-value\n").unwrap();
        let seed = dir.path().join("seed");
        std::fs::write(&seed, "not a seed").unwrap();
        let creds = dir.path().join("creds");
        std::fs::write(&creds, "garbage").unwrap();
        let cases = [
            ("url = \"nats://impact:pw@n1:4222\"", "carries credentials"),
            ("url = \"nats://n1\"\nurls = [\"nats://n2\"]", "nats.url and nats.urls"),
            ("urls = []", "nats.urls"),
            ("url = \"http://n1:4222\"", "not a nats:// or tls://"),
            (
                &format!("url = \"nats://n1\"\nuser = \"impact\"\npassword_file = \"{}\"\ntoken_file = \"{}\"", password.display(), password.display()),
                "at most one way",
            ),
            ("url = \"nats://n1\"\nuser = \"impact\"", "nats.password_file"),
            ("url = \"nats://n1\"\ntoken_file = \"/nonexistent/token\"", "nats.token_file /nonexistent/token: cannot read it"),
            (&format!("url = \"nats://n1\"\nnkey_seed_file = \"{}\"", seed.display()), "nats.nkey_seed_file"),
            (&format!("url = \"nats://n1\"\ncreds_file = \"{}\"", creds.display()), "nats.creds_file"),
            ("url = \"nats://n1\"\ntls_cert_file = \"/etc/hostname\"", "nats.tls_key_file"),
            ("url = \"nats://n1\"\ntls_ca_file = \"/nonexistent/ca.pem\"", "nats.tls_ca_file"),
            ("url = \"nats://n1\"\ninbox_prefix = \"_INBOX.>\"", "nats.inbox_prefix"),
            ("url = \"nats://n1\"\nreplicas = 7", "nats.replicas"),
            ("url = \"nats://n1\"\npassword = \"inline\"", "unknown field"),
        ];
        for (section, expected) in cases {
            let error = nats_error(section);
            assert!(error.contains(expected), "{section}: {error}");
            assert!(
                !error.contains("s3cret-value") && !error.contains(":pw@"),
                "{error}"
            );
        }
    }

    #[test]
    fn nats_secrets_are_read_from_their_files_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret-value\n").unwrap();
        let file = write(&format!(
            "[nats]\nurls = [\"nats://n1:4222\", \"nats://n2:4222\"]\nuser = \"impact\"\npassword_file = \"{}\"\ninbox_prefix = \"_INBOX_impact\"\n",
            password.display()
        ));
        let config = Config::load(&Overrides {
            config_file: Some(file.path().into()),
            ..Default::default()
        })
        .unwrap();
        let nats = config.nats.clone().unwrap();
        assert_eq!(nats.urls.len(), 2);
        match &nats.auth {
            NatsAuth::UserPassword { user, password } => {
                assert_eq!(
                    (user.as_str(), password.expose()),
                    ("impact", "s3cret-value")
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{config:?}").contains("s3cret-value"));
        // The environment's comma-separated list wins over the file's.
        let config = Config::load(&Overrides {
            config_file: Some(file.path().into()),
            nats_url: Some("nats://a:1,nats://b:2,nats://c:3".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.nats.unwrap().urls.len(), 3);
    }
}
