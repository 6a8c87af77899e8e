//! A value that must never reach logs.

use std::fmt;

/// A secret, such as a registry password read from `password_file`.
///
/// `Debug` prints `Secret(<redacted>)`; there is no `Display` or `Serialize`, so the only way to
/// the value is an explicit [`Secret::expose`] at the point of use (building an
/// `Authorization` header).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

// === impl Secret ===

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Box<str>>) -> Self {
        Self(value.into())
    }

    /// The secret value; call only where it is sent, never to log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
