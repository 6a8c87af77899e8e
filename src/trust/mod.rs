//! Trust: verifiers that turn a tag into a signed digest.
//!
//! Notary v1 (Docker Content Trust) is the first verifier; others (cosign, Notation) sit beside
//! it behind the same interface.

pub mod notary;
