//! `alert-ledger import FILE`: append newline-delimited JSON events.
//!
//! Every line is validated like an HTTP submission. A refused line is reported with its
//! line number and reason and does not stop the import: good lines are still recorded.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::domain::NewEvent;
use crate::ledger::{Ledger, LedgerError, Outcome};
use crate::submission::{parse_json, validate_event};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub recorded: u64,
    pub duplicates: u64,
    pub refused: Vec<(u64, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

pub async fn import(
    ledger: &Ledger,
    file: &Path,
    batch_size: usize,
) -> Result<ImportSummary, ImportError> {
    let name = file.display().to_string();
    let (reader, progress): (Box<dyn Read>, ProgressBar) = if name == "-" {
        (Box::new(std::io::stdin()), ProgressBar::new_spinner())
    } else {
        let handle = std::fs::File::open(file).map_err(|e| ImportError::Read(name.clone(), e))?;
        let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        (Box::new(handle), bar)
    };
    let mut summary = ImportSummary::default();
    let mut pending: Vec<(u64, NewEvent)> = Vec::new();
    let mut line_number = 0u64;
    // Lines as bytes: one line that is not UTF-8 is refused like any other bad line,
    // instead of ending the import. A line is read up to MAX_LINE_BYTES; the rest of a
    // longer one is skipped unread into memory and the line refused.
    let mut reader = BufReader::new(reader);
    loop {
        let (mut bytes, too_long) = match read_line(&mut reader) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(error) => {
                // What was read and validated so far is still recorded.
                flush(ledger, &mut pending, &mut summary).await?;
                return Err(ImportError::Read(name.clone(), error));
            }
        };
        if line_number == 0 && bytes.starts_with(UTF8_BOM) {
            bytes.drain(..UTF8_BOM.len());
        }
        if too_long {
            line_number += 1;
            summary.refused.push((
                line_number,
                format!("longer than {MAX_LINE_BYTES} bytes (the API's body limit)"),
            ));
            continue;
        }
        line_number += 1;
        progress.inc(bytes.len() as u64 + 1);
        let line = match std::str::from_utf8(&bytes) {
            Ok(line) => line,
            Err(error) => {
                summary.refused.push((
                    line_number,
                    format!(
                        "not valid UTF-8 (the first bad byte is at byte {} of the line)",
                        error.valid_up_to() + 1
                    ),
                ));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(event) => pending.push((line_number, event)),
            Err(reason) => summary.refused.push((line_number, reason)),
        }
        if pending.len() >= batch_size {
            flush(ledger, &mut pending, &mut summary).await?;
            progress.set_message(format!("{} recorded", summary.recorded));
        }
    }
    flush(ledger, &mut pending, &mut summary).await?;
    progress.finish_and_clear();
    summary.refused.sort();
    Ok(summary)
}

fn parse_line(line: &str) -> Result<NewEvent, String> {
    match parse_json(line.as_bytes()) {
        Err(e) => Err(format!("not valid JSON: {e}")),
        Ok(Value::Object(object)) => validate_event(&object, "").map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.detail))
                .collect::<Vec<_>>()
                .join("; ")
        }),
        Ok(_) => Err("each line must be one event object".to_string()),
    }
}

/// A byte-order mark some editors put at the start of a UTF-8 file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The longest line taken, as the largest body `POST /v1/events` takes.
pub const MAX_LINE_BYTES: usize = crate::http::MAX_BODY_BYTES;

/// The next line without its `\n`, and whether it was longer than [`MAX_LINE_BYTES`]
/// (then only its start is returned); `None` at the end of the input.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some((line, false)));
    }
    if line.len() <= MAX_LINE_BYTES {
        // The last line, without a newline.
        return Ok(Some((line, false)));
    }
    // Skip the rest of the long line in pieces.
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            break;
        }
        match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                break;
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    }
    Ok(Some((line, true)))
}

async fn flush(
    ledger: &Ledger,
    pending: &mut Vec<(u64, NewEvent)>,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    if pending.is_empty() {
        return Ok(());
    }
    let (lines, events): (Vec<u64>, Vec<NewEvent>) = pending.drain(..).unzip();
    let results = ledger.record(events).await?;
    for (line, result) in lines.into_iter().zip(results) {
        match result.outcome {
            Outcome::Recorded => summary.recorded += 1,
            Outcome::Duplicate => summary.duplicates += 1,
            Outcome::Conflict => summary.refused.push((
                line,
                format!(
                    "event_id {} is already recorded for device {} with different content",
                    result.event_id, result.device_id
                ),
            )),
        }
    }
    Ok(())
}
