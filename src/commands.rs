//! The offline commands that work on a stopped service's data directory: status, history,
//! review, rebuild, export, import. They open the same store and use the same reads and the
//! same writer as the service.

use crate::app::App;
use crate::config::{Config, Overrides};
use crate::domain::event::StoredEvent;
use crate::domain::fold::{ActionRecord, Filters};
use crate::domain::ids::{ActionId, Country};
use crate::domain::review::{render_markdown, ReviewReport};
use crate::domain::rules::fact_from_stored;
use crate::domain::validate::{Origin, Schemas};
use crate::ingest::{Incoming, ItemOutcome, Payload, Source, WriteError, Writer};
use crate::metrics::Metrics;
use crate::queries;
use crate::store::Store;
use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The reserve `rebuild` and `import` keep when no configuration says otherwise.
const MIN_FREE_BYTES_DEFAULT: u64 = crate::config::MIN_FREE_MIB_DEFAULT << 20;
/// Events per writer submission during an import.
const IMPORT_CHUNK_EVENTS: usize = 1000;
/// Chunks sent to the writer and not yet answered during an import.
const IMPORT_CHUNKS_IN_FLIGHT: usize = 1;

pub fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    open_existing(data_dir, crate::store::CACHE_BYTES_DEFAULT, 0)
}

/// `open_store` with sled's cache set to `cache_bytes`, refusing (and changing nothing) while
/// the store's filesystem has less than `reserve_bytes` free.
fn open_existing(data_dir: &Path, cache_bytes: u64, reserve_bytes: u64) -> anyhow::Result<Store> {
    open_existing_with(data_dir, || {
        Store::open_reserved(data_dir, cache_bytes, reserve_bytes)
    })
}

fn open_existing_with(
    data_dir: &Path,
    open: impl FnOnce() -> Result<Store, crate::store::StoreError>,
) -> anyhow::Result<Store> {
    if !data_dir.join("sled").exists() {
        bail!(
            "no impact data in {} (nothing was ever stored there)",
            data_dir.display()
        );
    }
    open().with_context(|| {
        format!(
            "open the store in {} (is the service still running on it?)",
            data_dir.display()
        )
    })
}

pub fn parse_filters(
    as_of: Option<&str>,
    until_seq: Option<u64>,
    known_at: Option<&str>,
) -> anyhow::Result<Filters> {
    Ok(Filters {
        as_of: as_of
            .map(|text| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .with_context(|| format!("--as-of {text:?} is not YYYY-MM-DD"))
            })
            .transpose()?,
        until_seq,
        known_at: known_at
            .map(|text| {
                DateTime::parse_from_rfc3339(text)
                    .map(|at| at.with_timezone(&Utc))
                    .with_context(|| format!("--known-at {text:?} is not RFC 3339"))
            })
            .transpose()?,
    })
}

/// The config an offline command reads its rules from (file, if any) with its data dir.
pub fn offline_config(
    config_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Config> {
    Ok(Config::load(&Overrides {
        config_file,
        data_dir,
        http_addr: None,
        nats_url: None,
        nats_creds: None,
    })?)
}

pub fn status_json(config: &Config, action_id: &str, filters: &Filters) -> anyhow::Result<String> {
    let store = open_store(&config.data_dir)?;
    let action_id = ActionId::parse(action_id)?;
    let status = queries::status(
        &store,
        store.last_seq()?,
        &action_id,
        filters,
        &config.rules,
    )?
    .with_context(|| format!("no Action {action_id} (under these filters)"))?;
    Ok(serde_json::to_string(&status)?)
}

/// The outcomes export of a stopped service's store, as `GET /v1/exports/outcomes.csv` (or
/// `.xlsx`) writes it for an admin (every country, or `country`).
pub fn outcomes(
    config: &Config,
    filters: &Filters,
    country: Option<Country>,
    format: crate::cli::ExportFormat,
) -> anyhow::Result<Vec<u8>> {
    use crate::cli::ExportFormat;
    let store = open_store(&config.data_dir)?;
    let list = crate::api::actions::ListFilter {
        country,
        ..Default::default()
    };
    let sees = |_: &Country| true;
    let asked = crate::exports::Asked {
        filters,
        list: &list,
        sees: &sees,
    };
    let durable = store.last_seq()?;
    let rules = &config.rules;
    let mut bytes = Vec::new();
    match format {
        ExportFormat::Xlsx => bytes = crate::exports::xlsx(&store, durable, rules, &asked)?,
        ExportFormat::Csv => {
            crate::exports::write_csv(&store, durable, rules, &asked, false, &mut bytes)?;
        }
        ExportFormat::Iati => {
            let iati = config.iati.as_ref().context(
                "the IATI export needs the configuration's [iati] section (reporting_org_ref, \
                 reporting_org_name): pass it with --config",
            )?;
            let written =
                crate::exports::iati::write_iati(&store, durable, rules, &asked, iati, &mut bytes)?;
            anyhow::ensure!(written > 0, crate::exports::iati::NOTHING_IN_SCOPE);
        }
    }
    Ok(bytes)
}

pub fn history_json(config: &Config, action_id: &str, filters: &Filters) -> anyhow::Result<String> {
    let store = open_store(&config.data_dir)?;
    let action_id = ActionId::parse(action_id)?;
    let events = queries::history(&store, store.last_seq()?, &action_id, filters)?
        .with_context(|| format!("no Action {action_id}"))?;
    Ok(serde_json::to_string(
        &serde_json::json!({"action_id": action_id, "events": events}),
    )?)
}

pub async fn review(
    config: Config,
    as_of: Option<NaiveDate>,
    country: Option<Country>,
) -> anyhow::Result<ReviewReport> {
    let mut config = config;
    config.nats = None;
    open_store(&config.data_dir)?;
    let (app, writer_thread) = App::start(config).await?;
    let report = app
        .run_review(as_of, country, None)
        .await
        .map_err(|e| anyhow::anyhow!("review: {e}"))?;
    drop(app);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the writer panicked"))?;
    Ok(report)
}

pub fn print_review(report: &ReviewReport, markdown: bool) -> anyhow::Result<()> {
    if markdown {
        print!("{}", render_markdown(report));
    } else {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
}

/// An Action's record under construction: its facts, already in the record's encoding.
struct Building {
    country: Country,
    count: usize,
    facts: Vec<u8>,
}

impl Building {
    /// The record's bytes: postcard writes a struct as its fields in order and a `Vec` as a
    /// varint length then its items, so the facts encoded one by one need only a header.
    fn encode(&self, action_id: &ActionId) -> Vec<u8> {
        let mut bytes = postcard::to_stdvec(action_id).expect("an id encodes");
        bytes.extend(postcard::to_stdvec(&self.country).expect("a country encodes"));
        bytes.extend(postcard::to_stdvec(&self.count).expect("a length encodes"));
        bytes.extend_from_slice(&self.facts);
        bytes
    }
}

/// Records written to sled per batch at the end of a rebuild.
const REBUILD_WRITE_RECORDS: usize = 10_000;

/// Rebuilds every view from the log in one sequential scan, writing each record anew and
/// dropping any record the log does not give. Each Action's facts are
/// kept in their encoded form (tens of bytes each) until the end, then written in key order.
pub fn rebuild(data_dir: &Path, progress: bool) -> anyhow::Result<u64> {
    rebuild_within(
        data_dir,
        progress,
        REBUILD_MEMORY_BYTES,
        MIN_FREE_BYTES_DEFAULT,
    )
}

/// `rebuild`, holding at most about `memory_bytes` of encoded facts before writing them out,
/// and refusing to start while the filesystem has less than `reserve_bytes` free.
pub fn rebuild_within(
    data_dir: &Path,
    progress: bool,
    memory_bytes: usize,
    reserve_bytes: u64,
) -> anyhow::Result<u64> {
    let open = || {
        open_existing_with(data_dir, || {
            Store::open_for_rebuild(data_dir, CACHE_BYTES_OFFLINE, reserve_bytes)
        })
    };
    let mut store = open()?;
    let total = store.last_seq()?;
    // Killed from here on, the store is refused until a rebuild finishes.
    store.begin_rebuild()?;
    store.discard_pending_views()?;
    let bar = if progress {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} events ({per_sec})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let mut rebuilt = Rebuilt {
        building: HashMap::new(),
        written: HashSet::new(),
        held_bytes: 0,
    };
    let mut folded = 0u64;
    loop {
        let window_start = folded;
        for item in store.log_after(folded) {
            let (seq, json) = item?;
            let logged = fact_from_stored(&json, |id| rebuilt.record(&store, id))
                .map_err(|e| anyhow::anyhow!("seq {seq}: {e}"))?;
            if let Some(logged) = logged {
                let fact = postcard::to_stdvec(&logged.event).expect("a fact encodes");
                let entry = rebuilt
                    .building
                    .entry(logged.action_id)
                    .or_insert_with(|| Building {
                        country: logged.country,
                        count: 0,
                        facts: Vec::new(),
                    });
                // Counted as allocated (a Vec grows by doubling), plus the entry's own size.
                let before = entry.facts.capacity();
                entry.facts.extend(fact);
                entry.count += 1;
                rebuilt.held_bytes += entry.facts.capacity() - before;
                if before == 0 {
                    rebuilt.held_bytes += BUILDING_ENTRY_BYTES;
                }
                if rebuilt.held_bytes > memory_bytes {
                    rebuilt.spill(&store)?;
                }
            }
            folded = seq;
            if folded % 65_536 == 0 {
                bar.set_position(folded);
            }
            if folded - window_start >= REBUILD_WINDOW_EVENTS {
                break;
            }
        }
        if folded >= total || folded == window_start {
            break;
        }
        // sled 0.34 keeps the pages a scan pulled in, whatever its cache setting: closing and
        // opening the store again between windows bounds the rebuild's memory.
        drop(store);
        store = open()?;
    }
    rebuilt.spill(&store)?;
    drop(store);
    let store = open()?;
    // Every record the log gives was written over; what is left is a view the log does not give.
    let written = &rebuilt.written;
    store.drop_views_except(|key| {
        std::str::from_utf8(key)
            .ok()
            .and_then(|id| ActionId::parse(id).ok())
            .is_some_and(|id| written.contains(&id))
    })?;
    store.finish_rebuild()?;
    bar.set_position(folded);
    bar.finish();
    Ok(folded)
}

/// Events a rebuild reads before it closes and reopens the store (see `rebuild_within`).
const REBUILD_WINDOW_EVENTS: u64 = 100_000;
/// Encoded facts held in memory during a rebuild before they are written out: bounds its memory.
pub const REBUILD_MEMORY_BYTES: usize = 32 << 20;
/// What one Action's entry in a rebuild's map costs besides its facts (id, Vec, hash slot).
const BUILDING_ENTRY_BYTES: usize = 96;
/// sled's cache for the offline commands, which stream through the log once.
const CACHE_BYTES_OFFLINE: u64 = 16 << 20;

/// A rebuild in progress: facts in memory, and the Actions whose records it wrote already.
struct Rebuilt {
    building: HashMap<ActionId, Building>,
    written: HashSet<ActionId>,
    held_bytes: usize,
}

impl Rebuilt {
    /// The record's bytes so far: what this rebuild wrote of it, then what it holds.
    fn bytes(&self, store: &Store, action_id: &ActionId) -> anyhow::Result<Option<Vec<u8>>> {
        let earlier = if self.written.contains(action_id) {
            store.record_raw(action_id)?
        } else {
            None
        };
        let held = self.building.get(action_id);
        Ok(match (earlier, held) {
            (None, None) => None,
            (Some(bytes), None) => Some(bytes.to_vec()),
            (None, Some(held)) => Some(held.encode(action_id)),
            (Some(bytes), Some(held)) => {
                let ((_, country, count), facts): ((ActionId, Country, usize), &[u8]) =
                    postcard::take_from_bytes(&bytes)
                        .map_err(|e| anyhow::anyhow!("record {action_id}: {e}"))?;
                let mut all = facts.to_vec();
                all.extend_from_slice(&held.facts);
                Some(
                    Building {
                        country,
                        count: count + held.count,
                        facts: all,
                    }
                    .encode(action_id),
                )
            }
        })
    }

    fn record(&self, store: &Store, action_id: &ActionId) -> Option<ActionRecord> {
        let bytes = self.bytes(store, action_id).ok()??;
        crate::store::decode_record(&bytes).ok()
    }

    /// Writes every held record (appended to what was written before) and frees the memory.
    fn spill(&mut self, store: &Store) -> anyhow::Result<()> {
        let mut action_ids: Vec<ActionId> = self.building.keys().cloned().collect();
        action_ids.sort();
        for chunk in action_ids.chunks(REBUILD_WRITE_RECORDS) {
            let records = chunk
                .iter()
                .map(|id| {
                    Ok((
                        id.clone(),
                        self.bytes(store, id)?.expect("a held record has bytes"),
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            store.put_record_bytes(&records)?;
        }
        self.written.extend(action_ids);
        self.building.clear();
        self.held_bytes = 0;
        Ok(())
    }
}

pub fn export(data_dir: &Path, out: Option<&Path>) -> anyhow::Result<u64> {
    let store = open_store(data_dir)?;
    let sink: Box<dyn Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = BufWriter::with_capacity(1 << 20, sink);
    let mut count = 0;
    for item in store.log_after(0) {
        let (_, json) = item?;
        sink.write_all(&json)?;
        sink.write_all(b"\n")?;
        count += 1;
    }
    sink.flush()?;
    Ok(count)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub applied: u64,
    pub duplicate: u64,
    pub rejected: u64,
}

/// Appends, in file order and through the same validation, every exported event not stored yet.
pub fn import(data_dir: &Path, file: &Path) -> anyhow::Result<ImportCounts> {
    import_reserved(data_dir, file, MIN_FREE_BYTES_DEFAULT)
}

/// `import`, refusing to open the store while its filesystem has less than `reserve_bytes` free.
pub fn import_reserved(
    data_dir: &Path,
    file: &Path,
    reserve_bytes: u64,
) -> anyhow::Result<ImportCounts> {
    let store =
        Store::open_reserved(data_dir, CACHE_BYTES_OFFLINE, reserve_bytes).with_context(|| {
            format!(
                "open the store in {} (is the service still running on it?)",
                data_dir.display()
            )
        })?;
    let schemas = Arc::new(Schemas::load());
    let (writer, thread) = Writer::spawn(store, schemas.clone(), Arc::new(Metrics::new()))?;
    let reader = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?,
    );
    let mut counts = ImportCounts::default();
    let mut chunk = Vec::with_capacity(IMPORT_CHUNK_EVENTS);
    let mut lines_of_chunk = Vec::with_capacity(IMPORT_CHUNK_EVENTS);
    // Chunks sent and not yet answered: the next is parsed while the writer applies them.
    let mut in_flight = std::collections::VecDeque::new();
    let mut send = |chunk: &mut Vec<Incoming>,
                    lines: &mut Vec<usize>,
                    counts: &mut ImportCounts|
     -> anyhow::Result<()> {
        let answer = writer
            .blocking_send(std::mem::take(chunk), false)
            .map_err(|e| anyhow::anyhow!("import: {e}"))?;
        in_flight.push_back((answer, std::mem::take(lines)));
        while in_flight.len() > IMPORT_CHUNKS_IN_FLIGHT {
            let (answer, lines) = in_flight.pop_front().expect("not empty");
            settle(answer, lines, counts)?;
        }
        Ok(())
    };
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let line_number = index + 1;
        match imported(&schemas, &line) {
            Ok(incoming) => {
                chunk.push(incoming);
                lines_of_chunk.push(line_number);
            }
            Err(message) => {
                counts.rejected += 1;
                eprintln!("line {line_number}: {message}");
            }
        }
        if chunk.len() == IMPORT_CHUNK_EVENTS {
            send(&mut chunk, &mut lines_of_chunk, &mut counts)?;
        }
    }
    if !chunk.is_empty() {
        send(&mut chunk, &mut lines_of_chunk, &mut counts)?;
    }
    for (answer, lines) in in_flight {
        settle(answer, lines, &mut counts)?;
    }
    drop(writer);
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))?;
    Ok(counts)
}

/// Counts the answer to one chunk of an import, reporting each rejected line.
fn settle(
    answer: tokio::sync::oneshot::Receiver<crate::ingest::SubmissionResult>,
    lines: Vec<usize>,
    counts: &mut ImportCounts,
) -> anyhow::Result<()> {
    let outcomes = answer
        .blocking_recv()
        .map_err(|_| WriteError::Stopped)
        .and_then(|result| result)
        .map_err(|e| anyhow::anyhow!("import: {e}"))?;
    for (outcome, line) in outcomes.iter().zip(lines) {
        match outcome {
            ItemOutcome::Applied { .. } => counts.applied += 1,
            ItemOutcome::Duplicate { .. } => counts.duplicate += 1,
            ItemOutcome::Rejected(rejection) => {
                counts.rejected += 1;
                eprintln!("line {line}: {rejection}");
            }
        }
    }
    Ok(())
}

fn imported(schemas: &Schemas, line: &str) -> Result<Incoming, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("malformed_json: {e}"))?;
    let stored = StoredEvent::from_value(value).map_err(|e| format!("not a stored event: {e}"))?;
    let envelope = serde_json::to_value(&stored.envelope).map_err(|e| e.to_string())?;
    let parsed = schemas
        .parse_value(envelope, Origin::Service)
        .map_err(|rejection| rejection.to_string())?;
    Ok(Incoming {
        payload: Payload::Parsed(Box::new(parsed)),
        origin: Origin::Service,
        source: Source::Import {
            recorded_at: stored.recorded_at,
            stream_seq: stored.stream_seq,
            submitted_by: stored.submitted_by.clone(),
        },
        submitted_by: stored.submitted_by,
    })
}
