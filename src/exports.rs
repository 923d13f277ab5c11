//! The exports (CONTRACT.md §9) over the store: the outcome rows of the Actions in scope, as
//! CSV, one Action at a time, so that memory does not grow with the number of rows. The HTTP
//! endpoint and the CLI write the same bytes through `write_csv`.

use crate::api::actions::ListFilter;
use crate::domain::export::{rows, Head, Scope, COLUMNS};
use crate::domain::fold::{Filters, ViewRules};
use crate::domain::ids::Country;
use crate::queries;
use crate::store::{Store, StoreError};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output went away (a client that hung up) or could not be written.
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

impl From<csv::Error> for ExportError {
    fn from(error: csv::Error) -> ExportError {
        ExportError::Write(std::io::Error::other(error.to_string()))
    }
}

/// What an export is of: the §3.1 filters, the list filters, and for whom (`sees`).
pub struct Asked<'a> {
    pub filters: &'a Filters,
    pub list: &'a ListFilter,
    pub sees: &'a (dyn Fn(&Country) -> bool + Sync),
}

/// Writes the CSV of the outcomes in scope to `out` (RFC 4180: header row, CRLF, `"` quoting;
/// a UTF-8 byte-order mark first when `bom`): how many rows it wrote.
pub fn write_csv(
    store: &Store,
    durable: u64,
    rules: &ViewRules,
    asked: &Asked<'_>,
    bom: bool,
    mut out: impl Write,
) -> Result<u64, ExportError> {
    if bom {
        out.write_all("\u{feff}".as_bytes())?;
    }
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    writer.write_record(COLUMNS)?;
    let head = Head {
        reference: queries::reference_date(asked.filters),
        until_seq: asked.filters.until_seq,
        known_at: asked.filters.known_at,
    };
    let scope = Scope {
        track: asked.list.track,
        state: asked.list.state,
        flag: asked.list.flag,
    };
    let keep = |country: &Country| {
        (asked.sees)(country) && asked.list.country.as_ref().is_none_or(|c| c == country)
    };
    let mut written = 0;
    for status in queries::each_status(store, durable, asked.filters, rules, keep) {
        for row in rows(&status?, &scope, &head) {
            writer.write_record(row.iter().map(|cell| cell.text().into_owned()))?;
            written += 1;
        }
    }
    writer.flush()?;
    Ok(written)
}
