//! Content digests (`sha256:<hex>`), and hashing while streaming.

use std::fmt;

use aws_lc_rs::digest as lc;

use super::excerpt;

/// A hash algorithm trustgate can verify content with.
///
/// Only algorithms we can recompute are representable: a digest we cannot check would let
/// unverified bytes through, so anything else fails to parse with
/// [`DigestError::UnsupportedAlgorithm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// `sha256`, 64 hex characters. What every registry uses today.
    Sha256,
    /// `sha512`, 128 hex characters. Registered by the OCI image spec.
    Sha512,
}

/// A validated content digest: a supported algorithm and its lowercase hex encoding.
///
/// OCI image spec, "Digests": `algorithm ":" encoded`, with the encoded part of `sha256` and
/// `sha512` fixed to lowercase hex of the hash length. Two equal digests are equal strings.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    // The whole `algorithm:hex` string, so `as_str` needs no allocation.
    value: String,
}

/// Why a string is not a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// There is no `:` between algorithm and encoded part.
    #[error("digest {input:?} has no ':' between algorithm and hex")]
    MissingSeparator {
        /// The rejected input.
        input: String,
    },
    /// The algorithm part breaks `[a-z0-9]+([+._-][a-z0-9]+)*`.
    #[error("digest {input:?} has a malformed algorithm")]
    InvalidAlgorithm {
        /// The rejected input.
        input: String,
    },
    /// A well-formed algorithm that trustgate cannot verify (e.g. `md5`, `blake3`).
    #[error("digest algorithm {algorithm:?} is not supported (use sha256 or sha512)")]
    UnsupportedAlgorithm {
        /// The algorithm named by the input.
        algorithm: String,
    },
    /// The encoded part has the wrong number of characters for its algorithm.
    #[error("{algorithm} digest must have {expected} hex characters, found {found}")]
    InvalidLength {
        /// The algorithm named by the input.
        algorithm: DigestAlgorithm,
        /// Required length.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// The encoded part contains something other than lowercase hex.
    #[error("{algorithm} digest {input:?} must be lowercase hex")]
    InvalidHex {
        /// The algorithm named by the input.
        algorithm: DigestAlgorithm,
        /// The rejected input.
        input: String,
    },
}

/// Content did not hash to the digest it was fetched by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content digest mismatch: expected {expected}, computed {actual}")]
pub struct DigestMismatch {
    /// The digest the content was requested or announced under.
    pub expected: Digest,
    /// The digest of the bytes actually received.
    pub actual: Digest,
}

/// Incremental hash of a byte stream, finishing into a [`Digest`].
#[derive(Clone)]
pub struct DigestHasher {
    algorithm: DigestAlgorithm,
    context: lc::Context,
    len: u64,
}

/// Checks a byte stream against the digest it is supposed to have.
///
/// Feed every chunk to [`update`](Self::update) before it is forwarded or stored, then call
/// [`verify`](Self::verify) at end of stream. A stream that ends early or carries other bytes
/// fails the check; it is the caller's job not to commit or finish the response in that case.
#[derive(Clone)]
pub struct DigestVerifier {
    expected: Digest,
    hasher: DigestHasher,
}

// === impl DigestAlgorithm ===

impl DigestAlgorithm {
    /// The name used in digest strings: `sha256` or `sha512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// Number of hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    fn lc_algorithm(self) -> &'static lc::Algorithm {
        match self {
            Self::Sha256 => &lc::SHA256,
            Self::Sha512 => &lc::SHA512,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Digest ===

impl Digest {
    /// Validates `s` as `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some((name, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingSeparator { input: excerpt(s) });
        };
        // Tell "not a digest at all" apart from "a digest we cannot verify": the second is an
        // honest client using a newer algorithm and deserves a precise message.
        if !is_algorithm_grammar(name) {
            return Err(DigestError::InvalidAlgorithm { input: excerpt(s) });
        }
        let Some(algorithm) = DigestAlgorithm::from_name(name) else {
            return Err(DigestError::UnsupportedAlgorithm {
                algorithm: excerpt(name),
            });
        };
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::InvalidLength {
                algorithm,
                expected: algorithm.hex_len(),
                found: hex.len(),
            });
        }
        // Lowercase only: `sha256:ABC...` and `sha256:abc...` must not be two cache keys.
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::InvalidHex {
                algorithm,
                input: excerpt(s),
            });
        }
        Ok(Self {
            algorithm,
            value: s.to_owned(),
        })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self::compute(DigestAlgorithm::Sha256, bytes)
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn compute(algorithm: DigestAlgorithm, bytes: &[u8]) -> Self {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The lowercase hex encoding, without the `algorithm:` prefix.
    pub fn hex(&self) -> &str {
        &self.value[self.algorithm.as_str().len() + 1..]
    }

    /// The digest as `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Self::compute(self.algorithm, bytes) == *self
    }

    fn from_raw(algorithm: DigestAlgorithm, raw: &[u8]) -> Self {
        Self {
            algorithm,
            value: format!("{}:{}", algorithm.as_str(), hex::encode(raw)),
        }
    }
}

validated_string!(Digest, DigestError);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.value)
    }
}

/// OCI image spec algorithm grammar: `[a-z0-9]+([+._-][a-z0-9]+)*`.
fn is_algorithm_grammar(name: &str) -> bool {
    !name.is_empty()
        && name.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

// === impl DigestHasher ===

impl DigestHasher {
    /// A hasher with nothing fed yet.
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        Self {
            algorithm,
            context: lc::Context::new(algorithm.lc_algorithm()),
            len: 0,
        }
    }

    /// Feeds the next chunk of the stream.
    pub fn update(&mut self, chunk: &[u8]) {
        self.context.update(chunk);
        self.len = self.len.saturating_add(chunk.len() as u64);
    }

    /// Number of bytes fed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.len
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest::from_raw(self.algorithm, self.context.finish().as_ref())
    }

    /// Whether everything fed hashes to `expected` (false if the algorithms differ).
    pub fn matches(self, expected: &Digest) -> bool {
        self.finish() == *expected
    }
}

impl fmt::Debug for DigestHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestHasher")
            .field("algorithm", &self.algorithm)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// === impl DigestVerifier ===

impl DigestVerifier {
    /// A verifier for a stream that must hash to `expected`, using `expected`'s algorithm.
    pub fn new(expected: Digest) -> Self {
        Self {
            hasher: DigestHasher::new(expected.algorithm()),
            expected,
        }
    }

    /// Feeds the next chunk of the stream.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
    }

    /// The digest the stream must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// Number of bytes fed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.hasher.bytes_hashed()
    }

    /// Ends the stream: `Ok` with the digest if the bytes fed hash to the expected digest.
    pub fn verify(self) -> Result<Digest, DigestMismatch> {
        let actual = self.hasher.finish();
        if actual == self.expected {
            Ok(actual)
        } else {
            Err(DigestMismatch {
                expected: self.expected,
                actual,
            })
        }
    }
}

impl fmt::Debug for DigestVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestVerifier")
            .field("expected", &self.expected)
            .field("hasher", &self.hasher)
            .finish()
    }
}

#[cfg(test)]
mod tests;
