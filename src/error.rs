//! Error types of the library.
//!
//! Every error caused by user input (a config, a CSV, a submission, a FITS file, a
//! command-line value) names the file and the line/row and field, and maps to exit code 2;
//! everything else (an I/O failure while writing, a bug) maps to exit code 1; a regression
//! found by the nightly benchmark maps to exit code 3.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The library's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file has a syntax error, an unknown key, a wrong type or an out-of-range value.
    #[error("{file}:{line}:{column}: key `{key}`: {message}")]
    Config {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    /// A `--set key=value` override is malformed or its value is rejected.
    #[error("--set {assignment}: {message}")]
    Override { assignment: String, message: String },
    /// A row of a data file (CSV, submission) is malformed.
    #[error("{file}: line {line}, column {column} (`{field}`): {message}")]
    Data {
        file: String,
        line: usize,
        column: usize,
        field: String,
        message: String,
    },
    /// An input file is missing, unreadable or malformed as a whole.
    #[error("{file}: {message}")]
    BadFile { file: String, message: String },
    /// A command-line usage error that is not a config key.
    #[error("{0}")]
    Usage(String),
    /// An I/O failure on the output side (disk full, permissions...).
    #[error("I/O error at {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A failure that is not the user's fault.
    #[error("internal error: {0}")]
    Internal(String),
    /// The nightly benchmark found a quality or speed regression (exit code 3).
    #[error("regression: {0}")]
    Regression(String),
}

impl Error {
    /// Process exit code: 2 for bad input, 1 for internal failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. }
            | Error::Override { .. }
            | Error::Data { .. }
            | Error::BadFile { .. }
            | Error::Usage(_) => 2,
            Error::Io { .. } | Error::Internal(_) => 1,
            Error::Regression(_) => 3,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An input file that cannot be read: a bad-input error (exit 2).
    pub fn bad_file(path: impl AsRef<std::path::Path>, message: impl std::fmt::Display) -> Self {
        Error::BadFile {
            file: path.as_ref().display().to_string(),
            message: message.to_string(),
        }
    }
}

/// Converts a byte offset in `text` to a 1-based (line, column) pair, column in characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
        assert_eq!(line_col(t, 1000), (3, 1));
    }
}
