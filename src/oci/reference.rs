//! Tags, and the `<reference>` of a manifest request: a tag or a digest.

use std::fmt;

use super::digest::{Digest, DigestError};
use super::excerpt;

/// Longest tag accepted, in characters.
pub const MAX_TAG_LEN: usize = 128;

/// A tag such as `latest` or `1.25-alpine`.
///
/// Distribution spec grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`. Every allowed character is
/// safe in a URL path or query and in a file name, and a tag can never be `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// The `<reference>` of `/v2/<name>/manifests/<reference>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A mutable name; under `verify` it resolves to a digest through trust data.
    Tag(Tag),
    /// An immutable content address.
    Digest(Digest),
}

/// Why a string is not a [`Tag`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The tag is the empty string.
    #[error("tag is empty")]
    Empty,
    /// The tag is longer than [`MAX_TAG_LEN`] characters.
    #[error("tag is {len} bytes long, the limit is {MAX_TAG_LEN}")]
    TooLong {
        /// Length of the rejected tag in bytes.
        len: usize,
    },
    /// The first character is `.` or `-`, or outside `[A-Za-z0-9_]`.
    #[error("tag {tag:?} must start with a letter, digit or '_'")]
    InvalidStart {
        /// The rejected tag.
        tag: String,
    },
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error("tag {tag:?} may only contain letters, digits, '_', '.' and '-'")]
    InvalidCharacter {
        /// The rejected tag.
        tag: String,
    },
}

/// Why a string is not a [`Reference`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// No `:`, so it was read as a tag, and is not a valid one.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// It contains `:`, so it was read as a digest, and is not a valid one.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

// === impl Tag ===

impl Tag {
    /// Validates `s` as a tag.
    pub fn parse(s: &str) -> Result<Self, TagError> {
        let bytes = s.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(TagError::Empty);
        };
        if bytes.len() > MAX_TAG_LEN {
            return Err(TagError::TooLong { len: bytes.len() });
        }
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if !is_word(first) {
            return Err(TagError::InvalidStart { tag: excerpt(s) });
        }
        if !bytes.iter().all(|&b| is_word(b) || b == b'.' || b == b'-') {
            return Err(TagError::InvalidCharacter { tag: excerpt(s) });
        }
        Ok(Self(s.to_owned()))
    }

    /// The tag as it appears in a request.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

validated_string!(Tag, TagError);

// === impl Reference ===

impl Reference {
    /// Parses a tag, or a digest if `s` contains `:` (a tag never does).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.contains(':') {
            Ok(Self::Digest(Digest::parse(s)?))
        } else {
            Ok(Self::Tag(Tag::parse(s)?))
        }
    }

    /// The reference as it appears in a request.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Tag(tag) => tag.as_str(),
            Self::Digest(digest) => digest.as_str(),
        }
    }

    /// The tag, if this is one.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            Self::Tag(tag) => Some(tag),
            Self::Digest(_) => None,
        }
    }

    /// The digest, if this is one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Self::Tag(_) => None,
            Self::Digest(digest) => Some(digest),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<Tag> for Reference {
    fn from(tag: Tag) -> Self {
        Self::Tag(tag)
    }
}

impl From<Digest> for Reference {
    fn from(digest: Digest) -> Self {
        Self::Digest(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        let valid = ["latest", "1.25-alpine", "_", "A", "v1.0.0_rc.1", "a--b..c"];
        for case in valid {
            assert_eq!(Tag::parse(case).map(|t| t.to_string()).as_deref(), Ok(case));
        }
        assert!(Tag::parse(&"a".repeat(MAX_TAG_LEN)).is_ok());

        let invalid = [
            ("", "Empty"),
            (".", "InvalidStart"),
            ("..", "InvalidStart"),
            ("-latest", "InvalidStart"),
            (".hidden", "InvalidStart"),
            ("a/b", "InvalidCharacter"),
            ("a%2f", "InvalidCharacter"),
            ("a b", "InvalidCharacter"),
            ("a+b", "InvalidCharacter"),
            ("caf\u{e9}", "InvalidCharacter"),
        ];
        for (case, expected) in invalid {
            let err = Tag::parse(case).expect_err(case);
            assert!(
                format!("{err:?}").starts_with(expected),
                "{case:?}: unexpected {err:?}"
            );
        }
        let long = "a".repeat(MAX_TAG_LEN + 1);
        assert_eq!(Tag::parse(&long), Err(TagError::TooLong { len: 129 }));
    }

    #[test]
    fn references() {
        let digest = format!("sha256:{}", "0".repeat(64));
        // Ok(is_tag), or the start of the error's Debug form.
        let cases: [(&str, Result<bool, &str>); 6] = [
            ("latest", Ok(true)),
            (&digest, Ok(false)),
            ("", Err("Tag(Empty")),
            ("sha256:abc", Err("Digest(InvalidLength")),
            ("md5:abc", Err("Digest(UnsupportedAlgorithm")),
            ("tag:with-colon", Err("Digest(")),
        ];
        for (case, expected) in cases {
            match (Reference::parse(case), expected) {
                (Ok(reference), Ok(is_tag)) => {
                    assert_eq!(reference.tag().is_some(), is_tag, "{case}");
                    assert_eq!(reference.digest().is_some(), !is_tag, "{case}");
                    assert_eq!(reference.to_string(), case);
                }
                (Err(err), Err(prefix)) => {
                    assert!(
                        format!("{err:?}").starts_with(prefix),
                        "{case:?}: unexpected {err:?}"
                    )
                }
                (got, _) => panic!("{case:?}: unexpected {got:?}"),
            }
        }
    }
}
