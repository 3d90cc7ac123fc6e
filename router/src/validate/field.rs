//! [`FieldError`]: the error that names the request field at fault, and its kinds.

/// What is wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// Missing, malformed or out of range.
    Invalid,
    /// A feature this server does not offer.
    Unsupported,
    /// The prompt and completion do not fit the model's context.
    ContextLength,
    /// The named model cannot do what the request asks (an embedding model asked to chat).
    WrongModelKind,
}

/// A request field at fault, with a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// The field's path in the request (`messages[0].role`), or the header's name.
    pub param: String,
    pub message: String,
}

impl FieldError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Invalid, param, message)
    }

    pub fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Unsupported, param, message)
    }

    pub fn context_length(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::ContextLength, param, message)
    }

    pub fn new(kind: FieldErrorKind, param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            param: param.into(),
            message: message.into(),
        }
    }
}
