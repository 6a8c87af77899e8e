//! Repository names: the `<name>` in `/v2/<name>/...`.

use super::excerpt;

/// Longest repository name accepted, in bytes (distribution's `NameTotalLengthMax`).
pub const MAX_NAME_LEN: usize = 255;

/// A repository name such as `library/nginx`, without the registry host.
///
/// Distribution spec grammar: path components `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
/// joined by `/`, at most [`MAX_NAME_LEN`] bytes. The grammar alone rules out what would be
/// dangerous in a cache path or an upstream URL: `.` and `..` components, empty components,
/// leading or trailing `/`, `%`, and anything outside lowercase ASCII.
///
/// Unlike distribution's route pattern, no `host[:port]/` prefix is accepted: clients address
/// the upstream with `?ns=` (see [`RegistryHost`](super::RegistryHost)), never in the path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

/// Why a string is not a [`RepoName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("repository name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("repository name is {len} bytes long, the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// Length of the rejected name in bytes.
        len: usize,
    },
    /// The name starts or ends with `/`, or contains `//`.
    #[error("repository name {name:?} has an empty path component")]
    EmptyComponent {
        /// The rejected name.
        name: String,
    },
    /// A path component breaks the grammar (uppercase, `.`/`..`, `%`, bad separators...).
    #[error(
        "repository name {name:?}: component {component:?} must be lowercase letters and digits \
         joined by '.', '_', '__' or runs of '-'"
    )]
    InvalidComponent {
        /// The rejected name.
        name: String,
        /// The first component that failed.
        component: String,
    },
}

// === impl RepoName ===

impl RepoName {
    /// Validates `s` as a repository name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        // Length first, so the context copied into later errors is bounded.
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { len: s.len() });
        }
        for component in s.split('/') {
            if component.is_empty() {
                return Err(NameError::EmptyComponent { name: excerpt(s) });
            }
            if !is_path_component(component) {
                return Err(NameError::InvalidComponent {
                    name: excerpt(s),
                    component: excerpt(component),
                });
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as it appears in a request path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated path components, each non-empty and never `.` or `..`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

validated_string!(RepoName, NameError);

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, written out so that no regex engine is needed.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // An alphanumeric run, at least one byte long.
        let run_start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == run_start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator, which must be followed by another alphanumeric run.
        let sep_start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let separator = &bytes[sep_start..i];
        let valid =
            matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|&b| b == b'-');
        if separator.is_empty() || !valid {
            return false;
        }
    }
}

#[cfg(test)]
mod tests;
