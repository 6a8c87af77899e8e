//! An image reference as users write it: `[registry/]repository[:tag][@digest]`.

use super::{Digest, RepoName, Tag};

/// A parsed image reference.
#[derive(Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (`[host][:port]`, lowercased), when the first component names one.
    pub registry: Option<String>,
    /// The repository, as written (no `library/` added).
    pub repo: String,
    /// The tag, when one is written.
    pub tag: Option<String>,
    /// The digest (`<algorithm>:<hex>`), when one is written.
    pub digest: Option<String>,
}

/// Splits `[registry/]repo[:tag][@digest]` as docker does: the first component is a registry
/// when it contains `.` or `:` or is `localhost`.
pub fn parse_image(s: &str) -> Result<ImageRef, ImageRefError> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(Digest::parse(d)?.as_str().to_owned())),
        None => (s, None),
    };
    let (registry, path) = match rest.split_once('/') {
        Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first.to_ascii_lowercase()), path)
        }
        _ => (None, rest),
    };
    let (repo, tag) = match path.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => {
            (repo, Some(Tag::parse(tag)?.as_str().to_owned()))
        }
        _ => (path, None),
    };
    let repo = RepoName::parse(repo)?.as_str().to_owned();
    Ok(ImageRef {
        registry,
        repo,
        tag,
        digest,
    })
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImageRefError(String);

impl From<super::DigestError> for ImageRefError {
    fn from(e: super::DigestError) -> Self {
        ImageRefError(e.to_string())
    }
}

impl From<super::TagError> for ImageRefError {
    fn from(e: super::TagError) -> Self {
        ImageRefError(e.to_string())
    }
}

impl From<super::NameError> for ImageRefError {
    fn from(e: super::NameError) -> Self {
        ImageRefError(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let cases = [
            ("nginx", None, "nginx", None, None),
            (
                "library/nginx:1.25",
                None,
                "library/nginx",
                Some("1.25"),
                None,
            ),
            (
                "localhost:5000/team/app:v1",
                Some("localhost:5000"),
                "team/app",
                Some("v1"),
                None,
            ),
            (
                "registry.example.internal/app",
                Some("registry.example.internal"),
                "app",
                None,
                None,
            ),
        ];
        for (input, registry, repo, tag, digest) in cases {
            let got = parse_image(input).unwrap();
            assert_eq!(
                got,
                ImageRef {
                    registry: registry.map(str::to_owned),
                    repo: repo.to_owned(),
                    tag: tag.map(str::to_owned),
                    digest: digest.map(str::to_owned),
                },
                "{input}"
            );
        }
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse_image(&format!("app@{d}")).unwrap().digest, Some(d));
        assert!(parse_image("UPPER/case").is_err());
        assert!(parse_image("app@md5:abc").is_err());
    }
}
