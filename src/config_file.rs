//! Reading the TOML files `serve` is configured with (`--notify-config`,
//! `--auth-config`): bounded in size, UTF-8 checked with the line of the first bad byte,
//! and parse errors worded so that no value from the file is repeated.
//!
//! Both files hold secrets (webhook URLs, header values, bearer tokens), and a refusal
//! is printed to the terminal and the logs. serde's messages quote the offending value
//! (`invalid type: string "Bearer …", expected a map`), so a secret written in the wrong
//! place would be echoed; [`reason`] removes those quotes and keeps the rest.

use std::io::Read;
use std::path::Path;

/// Configuration files larger than this are refused before they are read whole: a real
/// one is a few kilobytes, and a mistaken path (a log, a disk image) should not stall
/// the start or fill memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Why a configuration file could not be read as text.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the file is larger than {} bytes (1 MiB), the most a configuration file may be",
        MAX_CONFIG_BYTES
    )]
    TooLarge,
    /// `line` is 1-based: the line holding the first byte that is not UTF-8. Callers
    /// print it in their own `line N:` form, so the message does not repeat it.
    #[error("the file is not UTF-8 text; the first invalid byte is on this line")]
    NotUtf8 { line: usize },
}

impl ReadError {
    /// The line the error is on, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ReadError::NotUtf8 { line } => Some(*line),
            _ => None,
        }
    }
}

/// The whole file as text, if it is at most [`MAX_CONFIG_BYTES`] of UTF-8.
pub fn read(path: &Path) -> Result<String, ReadError> {
    let file = std::fs::File::open(path)?;
    // The length is checked first so a huge file is refused without reading it; the
    // bounded read covers files whose length is not known up front (pipes, /dev/…).
    if file.metadata()?.len() > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        ReadError::NotUtf8 {
            line: line_at(valid, valid.len()),
        }
    })
}

/// The 1-based line of a byte offset.
pub fn line_at(text: &[u8], offset: usize) -> usize {
    text[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A TOML/serde error's reason on one line, without any value from the file.
pub fn reason(error: &toml::de::Error) -> String {
    redact_values(error.message().trim()).replace('\n', "; ")
}

/// serde quotes input in two messages: `invalid type`/`invalid value` print a string
/// as `string "…"` (Rust debug-escaped), and `unknown variant` prints the variant as
/// `` `…` ``. Both are replaced; keys (`unknown field`) and the expected values stay.
fn redact_values(message: &str) -> String {
    let mut message = redact_between(message, "string \"", debug_string_end, "a string");
    // Other values print as `integer `…``, `floating point `…``, `boolean `…``: an
    // unquoted token or number in the file is as much a secret as a quoted one.
    for (start, with) in [
        ("unknown variant `", "unknown variant"),
        ("integer `", "an integer"),
        ("floating point `", "a number"),
        ("boolean `", "a boolean"),
        ("character `", "a character"),
    ] {
        message = redact_between(&message, start, |rest| rest.find('`'), with);
    }
    message
}

/// Replace each `start`…end (found by `end_of`, which gets the text after `start` and
/// returns the offset of the closing byte) with `with`.
fn redact_between(
    message: &str,
    start: &str,
    end_of: impl Fn(&str) -> Option<usize>,
    with: &str,
) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(start) {
        let after = &rest[at + start.len()..];
        match end_of(after) {
            Some(end) => {
                out.push_str(&rest[..at]);
                out.push_str(with);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// The offset of the closing quote of a debug-escaped string: the first `"` that is
/// not escaped by a backslash.
fn debug_string_end(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(at),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_and_variants_are_redacted_keys_stay() {
        assert_eq!(
            redact_values(r#"invalid type: string "Bearer HDRSECRET", expected a map"#),
            "invalid type: a string, expected a map"
        );
        assert_eq!(
            redact_values(r#"invalid value: string "a \"quoted\\\" s3cret", expected u32"#),
            "invalid value: a string, expected u32"
        );
        assert_eq!(
            redact_values("unknown variant `https://s3cret`, expected one of `a`, `b`"),
            "unknown variant, expected one of `a`, `b`"
        );
        assert_eq!(
            redact_values("unknown field `max_attemps`, expected `max_attempts`"),
            "unknown field `max_attemps`, expected `max_attempts`"
        );
        assert_eq!(
            redact_values("invalid type: integer `987654321`, expected a string"),
            "invalid type: an integer, expected a string"
        );
        assert_eq!(
            redact_values("invalid type: floating point `12500.0`, expected a string"),
            "invalid type: a number, expected a string"
        );
        assert_eq!(
            redact_values("invalid type: boolean `true`, expected a string"),
            "invalid type: a boolean, expected a string"
        );
        assert_eq!(
            redact_values("invalid value: integer `-77`, expected u32"),
            "invalid value: an integer, expected u32"
        );
        // An unterminated quote (not serde's shape) is left as it is.
        assert_eq!(redact_values("string \"open"), "string \"open");
    }

    #[test]
    fn a_large_file_is_refused_and_bad_utf8_names_its_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let big = dir.path().join("big.toml");
        let size = usize::try_from(MAX_CONFIG_BYTES).expect("fits") + 1;
        std::fs::write(&big, vec![b'#'; size]).expect("write");
        let error = read(&big).expect_err("too large");
        assert_eq!(
            error.to_string(),
            "the file is larger than 1048576 bytes (1 MiB), the most a configuration file may be"
        );

        let exact = dir.path().join("exact.toml");
        std::fs::write(&exact, vec![b'#'; size - 1]).expect("write");
        assert_eq!(read(&exact).expect("at the limit").len(), size - 1);

        let latin1 = dir.path().join("latin1.toml");
        std::fs::write(&latin1, b"a = 1\nb = 2\nname = \"caf\xe9\"\n").expect("write");
        let error = read(&latin1).expect_err("not UTF-8");
        assert_eq!(error.line(), Some(3), "{error:?}");
        assert_eq!(
            error.to_string(),
            "the file is not UTF-8 text; the first invalid byte is on this line"
        );
    }
}
