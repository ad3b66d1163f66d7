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
    // instead of ending the import.
    for bytes in BufReader::new(reader).split(b'\n') {
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(error) => {
                // What was read and validated so far is still recorded.
                flush(ledger, &mut pending, &mut summary).await?;
                return Err(ImportError::Read(name.clone(), error));
            }
        };
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
