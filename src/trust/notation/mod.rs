//! Notation (Notary Project) signatures (`notaryproject/specifications`,
//! `specs/signature-specification.md`, `specs/trust-store-trust-policy.md`,
//! `specs/signature-verification-details.md`), as notation-go verifies them.
//!
//! - [`envelope`]: the signature envelope, JWS JSON (`application/jose+json`) or COSE_Sign1
//!   (`application/cose`), parsed with bounds and its integrity checked (signature under the
//!   leaf certificate's key, critical headers, signing scheme, algorithms and key sizes);
//! - [`policy`]: notation's own trust policy document (`trustpolicy.oci.json`, or the older
//!   `trustpolicy.json`), validated as notation-go validates it, and its statements chosen by
//!   registry scope;
//! - [`store`]: notation's trust store directory (`truststore/x509/{ca,signingAuthority,tsa}/<name>/`);
//! - [`revocation`]: CRL (fetched with a file cache, or supplied by the operator) and OCSP;
//! - [`verify`]: the checks in notation-go's order under the statement's levels and overrides;
//! - [`verifier`]: the verifier behind the proxy's policy (`verifier: notation`): signatures
//!   discovered among the image's referrers, verdicts cached.

pub mod envelope;
pub mod policy;
pub mod revocation;
pub mod store;
pub mod verifier;
pub mod verify;

pub use verifier::NotationVerifier;

/// `artifactType` (or, in the older form, config `mediaType`) of a Notation signature manifest.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
