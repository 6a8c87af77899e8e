//! Media types as they appear in descriptors and in `?artifactType=`.

use super::excerpt;

/// Longest `type/subtype` accepted: two RFC 6838 names of at most 127 characters.
const MAX_MEDIA_TYPE_LEN: usize = 255;

/// A media type without parameters, such as `application/vnd.oci.image.layer.v1.tar+gzip`.
///
/// RFC 6838 section 4.2: `type "/" subtype`, each a restricted name of 1 to 127 characters
/// from `[A-Za-z0-9!#$&^_.+-]`, starting with a letter or digit. The OCI image spec requires
/// descriptor media types to comply with it. Every such value is a valid HTTP header value,
/// so a media type read from content can be sent as `Content-Type` without re-checking.
/// The original spelling is kept: media types are compared as the content spells them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaType(String);

/// Why a string is not a [`MediaType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// The value is longer than 255 bytes.
    #[error("media type is {len} bytes long, the limit is {MAX_MEDIA_TYPE_LEN}")]
    TooLong {
        /// Length of the rejected value in bytes.
        len: usize,
    },
    /// The value is not `type/subtype` made of RFC 6838 restricted names.
    #[error("{value:?} is not an RFC 6838 media type (type/subtype, no parameters)")]
    Invalid {
        /// The rejected value.
        value: String,
    },
}

// === impl MediaType ===

impl MediaType {
    /// Validates `s` as `type/subtype`.
    pub fn parse(s: &str) -> Result<Self, MediaTypeError> {
        if s.len() > MAX_MEDIA_TYPE_LEN {
            return Err(MediaTypeError::TooLong { len: s.len() });
        }
        match s.split_once('/') {
            Some((kind, subtype)) if is_restricted_name(kind) && is_restricted_name(subtype) => {
                Ok(Self(s.to_owned()))
            }
            _ => Err(MediaTypeError::Invalid { value: excerpt(s) }),
        }
    }

    /// The media type as spelled in the content or request.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

validated_string!(MediaType, MediaTypeError);

fn is_restricted_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=127).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        let valid = [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.oci.empty.v1+json",
            "text/plain",
            "Application/JSON",
        ];
        for case in valid {
            assert_eq!(
                MediaType::parse(case).map(|m| m.to_string()).as_deref(),
                Ok(case)
            );
        }
        let invalid = [
            "",
            "application",
            "application/",
            "/json",
            "application/json; charset=utf-8",
            "application/json/x",
            "application/.json",
            "application/js on",
            "application/json\r\nX-Injected: 1",
            "*/*",
        ];
        for case in invalid {
            assert!(
                matches!(MediaType::parse(case), Err(MediaTypeError::Invalid { .. })),
                "{case:?}"
            );
        }
        let long = format!("application/{}", "a".repeat(250));
        assert!(matches!(
            MediaType::parse(&long),
            Err(MediaTypeError::TooLong { .. })
        ));
    }
}
