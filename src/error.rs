//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate, with enough context to say what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RnnError {
    /// An array does not have the shape the layer needs.
    #[error("{what} has shape {}, expected {expected}", show_shape(got))]
    ShapeMismatch {
        /// Which array (for example `"kernel"` or `"input"`).
        what: String,
        /// The shape that was needed, in words (for example `"[3, 5] (D × M)"`).
        expected: String,
        /// The shape that was given.
        got: Vec<usize>,
    },

    /// A size is zero where at least one is needed (batch, time steps, features or units).
    #[error("{what} must be at least 1, got 0")]
    EmptyDimension {
        /// Which dimension.
        what: String,
    },

    /// A sequence length of 0 or longer than the input.
    #[error("lengths[{index}] is {length}; every length must be between 1 and T = {steps}")]
    BadLength {
        /// Which sequence.
        index: usize,
        /// Its length.
        length: usize,
        /// The number of time steps of the input.
        steps: usize,
    },

    /// An option with a value that means nothing (a negative clip, say).
    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// Input values a model cannot take (a token id outside its Embedding's vocabulary, a
    /// batch size that differs from the one a stateful model holds state for).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// An activation name that Keras does not know, or that this crate does not run.
    #[error("unknown activation {0:?}; known: {known}", known = crate::Activation::KERAS_NAMES.join(", "))]
    UnknownActivation(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A file was read but its content is not what was expected (wrong dtype, malformed, missing arrays).
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// No GPU adapter could be found, or none could give a device.
    #[error("no GPU adapter available: {0}")]
    NoAdapter(String),

    /// The shape needs more than the device allows, even after splitting the work into chunks.
    #[error("exceeds a device limit: {0}")]
    DeviceLimit(String),

    /// wgpu reported an error (validation, out of memory, a failed buffer mapping).
    #[error("GPU error: {0}")]
    Gpu(String),

    /// The GPU device was lost (driver reset, device removed); build a new context.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
}

/// How many characters of a string read from a file an error message quotes.
const MAX_QUOTED_CHARS: usize = 200;
/// How many axes of a shape an error message prints.
const MAX_SHOWN_AXES: usize = 8;
/// How many items of a list read from a file an error message prints.
#[cfg(any(feature = "keras", feature = "torch"))]
const MAX_SHOWN_ITEMS: usize = 8;

/// A string read from a file, for an error message, cut short when long (as [`quote`], without
/// the quotes, for names that messages have always shown bare).
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        None => s.to_string(),
        Some((end, _)) => format!("{}… ({} chars)", &s[..end], s.chars().count()),
    }
}

/// A string read from a file, for an error message: quoted, and cut short when long, so that a
/// forged file cannot make a message of megabytes.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}… ({} chars)", &s[..end], s.chars().count()),
    }
}

/// A shape for an error message: `[2, 3]`, or the first axes and the count when it has many.
pub(crate) fn show_shape(shape: &[usize]) -> String {
    if shape.len() <= MAX_SHOWN_AXES {
        return format!("{shape:?}");
    }
    let head: Vec<String> = shape[..MAX_SHOWN_AXES]
        .iter()
        .map(usize::to_string)
        .collect();
    format!("[{}, …] ({} axes)", head.join(", "), shape.len())
}

/// Names read from a file, for an error message: each quoted, the first few of a long list.
#[cfg(any(feature = "keras", feature = "torch"))]
pub(crate) fn show_names<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(MAX_SHOWN_ITEMS)
        .map(|n| quote(n.as_ref()))
        .collect();
    let more = names.len().saturating_sub(MAX_SHOWN_ITEMS);
    if more == 0 {
        format!("[{}]", shown.join(", "))
    } else {
        format!("[{}, … and {more} more]", shown.join(", "))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = RnnError> = std::result::Result<T, E>;

impl RnnError {
    pub(crate) fn shape(
        what: impl Into<String>,
        expected: impl Into<String>,
        got: &[usize],
    ) -> Self {
        RnnError::ShapeMismatch {
            what: what.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        RnnError::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_quote_file_content_briefly() {
        assert_eq!(show_shape(&[2, 3]), "[2, 3]");
        let many = vec![1usize; 100_003];
        let shown = show_shape(&many);
        assert!(
            shown.len() < 60 && shown.ends_with("(100003 axes)"),
            "{shown}"
        );
        let err = RnnError::shape("input", "3 axes", &many).to_string();
        assert!(err.len() < 120, "{err}");
        assert_eq!(quote("ab"), "\"ab\"");
        let long = quote(&"é".repeat(5000));
        assert!(
            long.chars().count() < 230 && long.ends_with("(5000 chars)"),
            "{long}"
        );
        #[cfg(any(feature = "keras", feature = "torch"))]
        {
            let names: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
            assert!(show_names(&names).ends_with("… and 92 more]"));
            assert_eq!(show_names(&["a"]), "[\"a\"]");
        }
    }
}
