//! The field office's outbox: events kept on disk from before they are sent until the server
//! has answered for each by name (accepted, duplicate, or a rejection naming it). A poor line,
//! an expired token (`401`), a refusal that names no event, a crash of the client: the events
//! stay and are sent first on the next run (the server answers `duplicate` for any it had).
//!
//! Each request's events are one file, a JSON array, written atomically: to a temporary name,
//! synced, renamed, and the directory synced, so a kill at any moment leaves every file whole.
//! An answered event is taken out by writing its file again the same way (or removing it).

use anyhow::Context;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files being written end so; they are never read as the outbox, and stale ones are removed.
const TEMP_SUFFIX: &str = ".partial";

pub struct Outbox {
    dir: PathBuf,
    files: Vec<OutboxFile>,
    written: usize,
}

struct OutboxFile {
    path: PathBuf,
    events: Vec<Value>,
    answered: Vec<bool>,
    changed: bool,
}

/// Where one event to send is kept: its file and place in it.
#[derive(Clone, Copy, Debug)]
pub struct Kept {
    file: usize,
    index: usize,
}

impl Outbox {
    /// Opens (creating) the outbox and reads what it holds, oldest first.
    pub fn open(dir: &Path) -> anyhow::Result<Outbox> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create the outbox {}", dir.display()))?;
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("read the outbox {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(TEMP_SUFFIX) {
                // A write that a crash cut short: its events were never taken from their
                // source as delivered, and the file it was replacing is still whole.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let text = std::fs::read(&path)
                .with_context(|| format!("read the outbox file {}", path.display()))?;
            let events = match serde_json::from_slice::<Value>(&text) {
                Ok(Value::Array(events)) => events,
                Ok(event @ Value::Object(_)) => vec![event],
                _ => {
                    eprintln!(
                        "skipped {}: not a JSON event or array (left in place)",
                        path.display()
                    );
                    continue;
                }
            };
            files.push(OutboxFile {
                answered: vec![false; events.len()],
                path,
                events,
                changed: false,
            });
        }
        Ok(Outbox {
            dir: dir.to_owned(),
            files,
            written: 0,
        })
    }

    /// Every event the outbox holds, with where it is kept.
    pub fn queued(&self) -> Vec<(Value, Kept)> {
        self.files
            .iter()
            .enumerate()
            .flat_map(|(file, f)| {
                f.events
                    .iter()
                    .enumerate()
                    .map(move |(index, event)| (event.clone(), Kept { file, index }))
            })
            .collect()
    }

    /// Keeps `events` in a new file before they are sent.
    pub fn keep(&mut self, events: &[Value]) -> anyhow::Result<Vec<Kept>> {
        self.written += 1;
        let name = format!(
            "{}-{:04}-{}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            self.written,
            std::process::id()
        );
        let path = self.dir.join(name);
        write_atomic(&path, &serde_json::to_vec(events)?)
            .with_context(|| format!("write the outbox file {}", path.display()))?;
        self.files.push(OutboxFile {
            path,
            events: events.to_vec(),
            answered: vec![false; events.len()],
            changed: false,
        });
        let file = self.files.len() - 1;
        Ok((0..events.len())
            .map(|index| Kept { file, index })
            .collect())
    }

    /// The server answered for this event by name: it leaves the outbox at the next `flush`.
    pub fn answered(&mut self, kept: Kept) {
        let file = &mut self.files[kept.file];
        if !file.answered[kept.index] {
            file.answered[kept.index] = true;
            file.changed = true;
        }
    }

    /// Writes back every file that lost events: the rest atomically, or removes it if none.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        for file in self.files.iter_mut().filter(|file| file.changed) {
            let rest: Vec<&Value> = file
                .events
                .iter()
                .zip(&file.answered)
                .filter(|(_, answered)| !**answered)
                .map(|(event, _)| event)
                .collect();
            if rest.is_empty() {
                match std::fs::remove_file(&file.path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => {
                        return Err(error)
                            .with_context(|| format!("remove {}", file.path.display()))
                    }
                }
                sync_dir(&self.dir)?;
            } else {
                write_atomic(&file.path, &serde_json::to_vec(&rest)?)
                    .with_context(|| format!("write the outbox file {}", file.path.display()))?;
            }
            file.changed = false;
        }
        Ok(())
    }

    /// How many events the outbox still holds.
    pub fn len(&self) -> usize {
        self.files
            .iter()
            .map(|file| file.answered.iter().filter(|answered| !**answered).count())
            .sum()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes `bytes` to `path` so that `path` is, at every moment, its old content or the new.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(TEMP_SUFFIX);
    let temp = PathBuf::from(temp);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
