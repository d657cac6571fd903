//! The codecs' error: what went wrong and where (the field path).

use std::fmt;

use crate::schema::Field;

/// What kind of failure a [`CodecError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecErrorKind {
    /// The input is not valid for the format, or violates the OTLP mapping (400 /
    /// INVALID_ARGUMENT).
    Invalid,
    /// The input is larger than the configured maximum (413 / RESOURCE_EXHAUSTED).
    TooLarge,
    /// `AnyValue`s (or the document's structure) are nested deeper than allowed
    /// (400 / INVALID_ARGUMENT).
    TooDeep,
}

/// A decoding or encoding failure, naming the field where it happened, e.g.
/// `resourceSpans[0].scopeSpans[0].spans[3].traceId: expected 32 hex characters, got 30`.
#[derive(Clone, PartialEq, Eq)]
pub struct CodecError {
    kind: CodecErrorKind,
    message: String,
    /// Innermost segment first; reversed for display.
    path: Vec<String>,
    /// Byte offset in the input, where the format knows it.
    offset: Option<usize>,
}

impl CodecError {
    /// An [`CodecErrorKind::Invalid`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(CodecErrorKind::Invalid, message)
    }

    /// An error of `kind`.
    pub fn new(kind: CodecErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            path: Vec::new(),
            offset: None,
        }
    }

    /// Adds the field the error happened in (called while the error bubbles up).
    pub fn at(mut self, field: &Field) -> Self {
        self.path.push(field.json.to_string());
        self
    }

    /// Adds a repeated field and the index of the element the error happened in.
    pub fn at_index(mut self, field: &Field, index: usize) -> Self {
        self.path.push(format!("{}[{index}]", field.json));
        self
    }

    /// Records the input offset, if not already known.
    pub fn with_offset(mut self, offset: usize) -> Self {
        self.offset.get_or_insert(offset);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> CodecErrorKind {
        self.kind
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field path, outermost first, e.g. `resourceSpans[0].resource`.
    pub fn path(&self) -> String {
        let mut segments: Vec<&str> = self.path.iter().map(String::as_str).collect();
        segments.reverse();
        segments.join(".")
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path())?;
        }
        f.write_str(&self.message)?;
        if let Some(offset) = self.offset {
            write!(f, " (at byte {offset})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodecError({:?}: {self})", self.kind)
    }
}

impl std::error::Error for CodecError {}

impl From<CodecError> for otlp_core::ExportError {
    fn from(error: CodecError) -> Self {
        match error.kind {
            CodecErrorKind::TooLarge => otlp_core::ExportError::too_large(error.to_string()),
            CodecErrorKind::Invalid | CodecErrorKind::TooDeep => {
                otlp_core::ExportError::invalid_argument(error.to_string())
            }
        }
    }
}
