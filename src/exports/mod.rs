//! The exports (CONTRACT.md §9) over the store: the outcome rows of the Actions in scope, as
//! CSV, one Action at a time, so that memory does not grow with the number of rows; or as an
//! XLSX workbook (built whole: the format is a zip of the sheet). The HTTP endpoints and the
//! CLI write the same bytes through `write_csv`, `xlsx` and `iati::write_iati`.

pub mod iati;

use crate::api::actions::ListFilter;
use crate::domain::export::{rows, Cell, Head, Scope, COLUMNS};
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

impl From<rust_xlsxwriter::XlsxError> for ExportError {
    fn from(error: rust_xlsxwriter::XlsxError) -> ExportError {
        ExportError::Write(std::io::Error::other(error.to_string()))
    }
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

impl Asked<'_> {
    /// The outcomes in scope: the list filters read for each outcome.
    pub fn scope(&self) -> Scope {
        Scope {
            track: self.list.track,
            state: self.list.state,
            flag: self.list.flag,
        }
    }

    /// Whether a country's Actions are in the export: the caller sees it and the country
    /// filter, if any, names it.
    pub fn keeps(&self, country: &Country) -> bool {
        (self.sees)(country) && self.list.country.as_ref().is_none_or(|c| c == country)
    }
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
    let mut written = 0;
    each_row(store, durable, rules, asked, |row| {
        // Field by field: a cell's text is borrowed, not copied, unless it must change.
        for cell in row {
            writer.write_field(cell.text().as_bytes())?;
        }
        writer.write_record(None::<&[u8]>)?;
        written += 1;
        Ok(())
    })?;
    writer.flush()?;
    Ok(written)
}

/// Hands each row in scope to `write`, in order: Action by Action, outcome by outcome.
fn each_row(
    store: &Store,
    durable: u64,
    rules: &ViewRules,
    asked: &Asked<'_>,
    mut write: impl FnMut(&[Cell; 21]) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let head = Head {
        reference: queries::reference_date(asked.filters),
        until_seq: asked.filters.until_seq,
        known_at: asked.filters.known_at,
    };
    let scope = asked.scope();
    let keep = |country: &Country| asked.keeps(country);
    for status in queries::each_status(store, durable, asked.filters, rules, keep) {
        for row in rows(&status?, &scope, &head) {
            write(&row)?;
        }
    }
    Ok(())
}

/// The first and last days a spreadsheet date can be.
const EXCEL_FIRST_DAY: chrono::NaiveDate = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
const EXCEL_LAST_DAY: chrono::NaiveDate = chrono::NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();

/// The XLSX of the outcomes in scope: one sheet `outcomes`, the header row first and frozen,
/// the cells of the CSV (the same text, a formula-looking one behind its `'`), dates as dates,
/// counts as numbers, each column as wide as what it holds.
pub fn xlsx(
    store: &Store,
    durable: u64,
    rules: &ViewRules,
    asked: &Asked<'_>,
) -> Result<Vec<u8>, ExportError> {
    use chrono::Datelike;
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
    let excel_day = |date: chrono::NaiveDate| {
        ExcelDateTime::from_ymd(date.year() as u16, date.month() as u8, date.day() as u8)
    };
    let mut workbook = Workbook::new();
    // Dated by its reference date, not the clock: the same filters give the same bytes (the
    // CLI's and the endpoint's). A spreadsheet's dates run from 1900 to 9999 only.
    let reference = queries::reference_date(asked.filters).clamp(EXCEL_FIRST_DAY, EXCEL_LAST_DAY);
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&excel_day(reference)?));
    let sheet = workbook.add_worksheet();
    sheet.set_name("outcomes")?;
    let bold = Format::new().set_bold();
    let day = Format::new().set_num_format("yyyy-mm-dd");
    // Widths in characters: a header's, or the longest cell's (a date takes ten), capped.
    let mut widths: Vec<usize> = COLUMNS.iter().map(|name| name.len()).collect();
    for (column, name) in COLUMNS.iter().enumerate() {
        sheet.write_string_with_format(0, column as u16, *name, &bold)?;
    }
    let mut row_number = 0u32;
    each_row(store, durable, rules, asked, |row| {
        row_number += 1;
        for (column, cell) in row.iter().enumerate() {
            let at = (row_number, column as u16);
            let width = match cell {
                Cell::Empty => 0,
                Cell::Text(_) => {
                    let text = cell.text();
                    sheet.write_string(at.0, at.1, text.as_ref())?;
                    text.chars().count()
                }
                Cell::Count(count) => {
                    sheet.write_number(at.0, at.1, *count as f64)?;
                    count.to_string().len()
                }
                // A date a spreadsheet cannot hold (before 1900) is written as its text.
                Cell::Date(date) if !(EXCEL_FIRST_DAY..=EXCEL_LAST_DAY).contains(date) => {
                    sheet.write_string(at.0, at.1, cell.text().as_ref())?;
                    10
                }
                Cell::Date(date) => {
                    sheet.write_date_with_format(at.0, at.1, &excel_day(*date)?, &day)?;
                    10
                }
            };
            widths[column] = widths[column].max(width);
        }
        Ok(())
    })?;
    for (column, width) in widths.into_iter().enumerate() {
        sheet.set_column_width(column as u16, (width.min(60) + 2) as f64)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(workbook.save_to_buffer()?)
}
