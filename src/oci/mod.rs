//! What clients ask for, checked once at the edge.
//!
//! This module is pure: it parses request paths and query strings into a [`Route`], validates
//! repository names, tags, digests and registry hosts into types that cannot hold anything
//! else, parses manifests into the descriptors they reference, and renders OCI error bodies.
//! Nothing here does I/O, so every decision it makes is covered by table tests.
//!
//! The types deliberately implement no `Deref<Target = str>`, `AsRef<str>` or `From<String>`:
//! the only way to get one is through its parser, and the only way to look inside is
//! [`Display`](std::fmt::Display) or `as_str()` (habit 3 in `STYLE.md`).
#![warn(missing_docs)]

/// Implements `Display`, `FromStr`, `TryFrom<&str>`, `TryFrom<String>` and serde for a
/// validated string type that has `fn parse(&str) -> Result<Self, $err>` and
/// `fn as_str(&self) -> &str`, so that every way in goes through `parse`.
macro_rules! validated_string {
    ($ty:ident, $err:ty) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $err;

            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $err;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&s).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}

pub mod digest;
pub mod error;
pub mod host;
pub mod image;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod reference;
pub mod route;

pub use self::digest::{
    Digest, DigestAlgorithm, DigestError, DigestHasher, DigestMismatch, DigestVerifier,
};
pub use self::error::{error_body, error_body_with_detail, OciError, OciErrorCode};
pub use self::host::{HostError, RegistryHost};
pub use self::image::{parse_image, ImageRef, ImageRefError};
pub use self::manifest::{
    negotiate, parse_manifest, AcceptDecision, Descriptor, ImageIndex, ImageManifest, Manifest,
    ManifestError, ManifestKind, Platform,
};
pub use self::media_type::{MediaType, MediaTypeError};
pub use self::name::{NameError, RepoName};
pub use self::reference::{Reference, ReferenceError, Tag, TagError};
pub use self::route::{parse, Endpoint, ReadMethod, Route, RouteError};

/// Longest piece of client input copied into an error, so that a hostile 64 KiB path cannot
/// make every log line and error body 64 KiB long.
const EXCERPT_CHARS: usize = 128;

/// Client input as it appears in error context: truncated to [`EXCERPT_CHARS`] characters.
fn excerpt(input: &str) -> String {
    match input.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &input[..cut]),
        None => input.to_owned(),
    }
}
