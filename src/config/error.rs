//! Configuration errors: one variant per failure, each pointing into the file.

use std::{
    fmt, io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::policy::Action;

/// A place in the configuration: file (when loaded from one), line and column (1-based, when
/// known). Displays as `trustgate.yaml:12:7`, or `<config>:12:7` for a string.
///
/// Compact (the file is shared, positions are `u32` with 0 for unknown) so that errors stay
/// small enough to return by value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    file: Option<Arc<Path>>,
    line: u32,
    column: u32,
}

/// Why a configuration could not be loaded, validated or built.
///
/// Display starts with the [`Location`]; no variant carries the content of a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Not valid YAML, or not the expected shape: unknown key, missing key, wrong type, or a
    /// bad value (duration, size, URL, pattern, role, signer, name). The message names the key.
    #[error("{at}: {message}")]
    Yaml {
        /// Where.
        at: Location,
        /// What `yaml_serde` (or a value's own parser) reported, with its key path.
        message: String,
    },
    /// `server.listen` and `server.admin_listen` would bind the same port.
    #[error(
        "{at}: server.admin_listen `{admin}` and server.listen `{listen}` use the same port; \
         the admin listener needs its own"
    )]
    ListenConflict {
        /// Where (`admin_listen`, or `listen` when `admin_listen` is the default).
        at: Location,
        /// The registry listener.
        listen: SocketAddr,
        /// The admin listener.
        admin: SocketAddr,
    },
    /// `cache.max_size` is zero.
    #[error("{at}: cache.max_size must be greater than zero")]
    ZeroCacheSize {
        /// Where.
        at: Location,
    },
    /// A `limits` key set to zero, which would refuse or cut off every request.
    #[error("{at}: limits.{key} must be greater than zero")]
    ZeroLimit {
        /// Where.
        at: Location,
        /// The key.
        key: &'static str,
    },
    /// `upstreams` is empty.
    #[error("{at}: upstreams is empty; configure at least one registry to proxy")]
    NoUpstreams {
        /// Where.
        at: Location,
    },
    /// Two upstreams with the same `registry`.
    #[error(
        "{at}: upstream registry `{registry}` is configured twice (first at {})",
        line(*first_line)
    )]
    DuplicateUpstream {
        /// Where (the second one).
        at: Location,
        /// The repeated registry name.
        registry: String,
        /// The line of the first one.
        first_line: Option<usize>,
    },
    /// More than one upstream with `default: true`.
    #[error("{at}: upstream `{registry}` is marked default, but `{first_registry}` already is (at {}); only one upstream can be the default", line(*first_line))]
    MultipleDefaultUpstreams {
        /// Where (the second `default: true`).
        at: Location,
        /// The second default upstream.
        registry: String,
        /// The first default upstream.
        first_registry: String,
        /// The line of the first one.
        first_line: Option<usize>,
    },
    /// `username` without `password_file`, or the reverse.
    #[error(
        "{at}: upstream `{registry}` has `{present}` but no `{missing}`; give both or neither"
    )]
    IncompleteCredentials {
        /// Where (the key that is present).
        at: Location,
        /// The upstream.
        registry: String,
        /// The key given.
        present: &'static str,
        /// The key missing.
        missing: &'static str,
    },
    /// `storage.backend: s3` without a `storage.s3` section.
    #[error("{at}: storage.backend is s3 but storage.s3 is missing; add `s3: {{bucket: <name>}}`")]
    MissingS3Settings {
        /// Where (`storage.backend`).
        at: Location,
    },
    /// A `storage.s3` section while the backend is `local`.
    #[error("{at}: storage.s3 is set but storage.backend is local, so it would have no effect; set `backend: s3` or remove `s3`")]
    S3SettingsWithoutBackend {
        /// Where (`storage.s3`).
        at: Location,
    },
    /// An `http://` endpoint without `allow_http: true`.
    #[error("{at}: storage.s3.endpoint `{endpoint}` is plain HTTP: object storage credentials and content would cross the network unencrypted; use https:// or set `allow_http: true` (only for a loopback or otherwise protected network)")]
    S3PlainHttp {
        /// Where (`storage.s3.endpoint`).
        at: Location,
        /// The endpoint.
        endpoint: String,
    },
    /// One of the two S3 key files without the other.
    #[error("{at}: storage.s3 has `{present}` but no `{missing}`; give both, or neither to use the AWS_* environment")]
    IncompleteS3Credentials {
        /// Where (the key that is present).
        at: Location,
        /// The key given.
        present: &'static str,
        /// The key missing.
        missing: &'static str,
    },
    /// The s3 backend without `trust_state_key_file` while a rule verifies with Notary v1.
    #[error("{at}: storage.s3 has no `trust_state_key_file`, but rule `{pattern}` verifies with Notary v1 ({}): without a key the replicas share, whoever can write the bucket chooses first-use roots and versions; mount a secret of at least 32 bytes and name it in `trust_state_key_file`", line(*rule_line))]
    MissingTrustStateKey {
        /// Where (`storage.s3`).
        at: Location,
        /// The first rule using Notary v1.
        pattern: String,
        /// Its line, when known.
        rule_line: Option<usize>,
    },
    /// `server.admin_token_file` could not be read, or is empty. Never quotes the content.
    #[error("{at}: cannot use server.admin_token_file {}: {reason}", path.display())]
    AdminTokenFile {
        /// Where (`server.admin_token_file`).
        at: Location,
        /// The file.
        path: PathBuf,
        /// What is wrong (an I/O error, or "it is empty").
        reason: String,
    },
    /// An `auth` file (htpasswd, token key, static token) could not be read or is not
    /// usable. Never quotes the content.
    #[error("{at}: {key}: cannot use {} for auth: {reason}", path.display())]
    AuthFile {
        /// Where (the key naming the file).
        at: Location,
        /// The key naming the file (`auth.tokens[0].file`), for logs that quote no line.
        key: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `auth.htpasswd_file` without `auth.token_key_file`: `/token` could not sign.
    #[error("{at}: auth.htpasswd_file needs auth.token_key_file (the key tokens from /token are signed with)")]
    MissingTokenKey {
        /// Where (`auth.htpasswd_file`).
        at: Location,
    },
    /// `auth.client_certificates` on a listener without `server.tls`.
    #[error("{at}: auth.client_certificates needs server.tls (client certificates are presented in the TLS handshake)")]
    ClientCertificatesWithoutTls {
        /// Where (`auth.client_certificates`).
        at: Location,
    },
    /// Two `auth.client_certificates.principals` with the same subject.
    #[error("{at}: subject `{subject}` is mapped twice in auth.client_certificates.principals")]
    DuplicateCertificateSubject {
        /// Where (the second one).
        at: Location,
        /// The repeated subject.
        subject: String,
    },
    /// An S3 key file could not be read, or is empty. The error never quotes the content.
    #[error("{at}: cannot use storage.s3.{key} {}: {reason}", path.display())]
    S3KeyFile {
        /// Where (the key).
        at: Location,
        /// `access_key_id_file`, `secret_access_key_file` or `trust_state_key_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong (an I/O error, which does not quote the content, or "it is empty").
        reason: String,
    },
    /// A password file could not be read. The error names the file, never its content.
    #[error("{at}: cannot read password_file {} of upstream `{registry}`: {source}", path.display())]
    ReadPasswordFile {
        /// Where (`password_file`).
        at: Location,
        /// The upstream.
        registry: String,
        /// The file.
        path: PathBuf,
        /// The I/O error (UTF-8 errors included), which does not quote the content.
        source: io::Error,
    },
    /// A password file is empty (after removing one trailing newline).
    #[error("{at}: password_file {} of upstream `{registry}` is empty", path.display())]
    EmptyPasswordFile {
        /// Where (`password_file`).
        at: Location,
        /// The upstream.
        registry: String,
        /// The file.
        path: PathBuf,
    },
    /// Two notary servers with the same `name`.
    #[error(
        "{at}: notary server `{name}` is configured twice (first at {})",
        line(*first_line)
    )]
    DuplicateNotaryServer {
        /// Where (the second one).
        at: Location,
        /// The repeated name.
        name: String,
        /// The line of the first one.
        first_line: Option<usize>,
    },
    /// A notary server with `ttl: 0s`.
    #[error("{at}: notary server `{name}` has ttl 0s, which would fetch trust data on every request; use at least 1s")]
    ZeroTtl {
        /// Where (`ttl`).
        at: Location,
        /// The notary server.
        name: String,
    },
    /// An upstream whose `tag_ttl` is longer than [`MAX_TAG_TTL`](super::MAX_TAG_TTL).
    #[error("{at}: upstream `{registry}` has a tag_ttl longer than 24h, which would answer its tags without asking it for more than a day; use at most 24h")]
    TagTtlTooLong {
        /// Where (`tag_ttl`).
        at: Location,
        /// The upstream's registry name.
        registry: String,
    },
    /// A `verify` or `audit` rule without `notary`.
    #[error("{at}: rule `{pattern}` has action {action} but names no notary server; add `notary: <name>` from notary_servers")]
    MissingNotaryServer {
        /// Where (`action`).
        at: Location,
        /// The rule's pattern.
        pattern: String,
        /// `verify` or `audit`.
        action: Action,
    },
    /// A rule naming a notary server that `notary_servers` does not define.
    #[error("{at}: rule `{pattern}` names notary server `{name}`, which notary_servers does not define{}", known_names(known))]
    UnknownNotaryServer {
        /// Where (`notary`).
        at: Location,
        /// The rule's pattern.
        pattern: String,
        /// The unknown name.
        name: String,
        /// The names that are defined.
        known: Vec<String>,
    },
    /// An `allow` or `deny` rule with trust fields, which would silently do nothing.
    #[error("{at}: rule `{pattern}` has action {action}, so `{key}` would have no effect; use verify or audit, or remove `{key}`")]
    TrustFieldsWithoutVerification {
        /// Where (the field).
        at: Location,
        /// The rule's pattern.
        pattern: String,
        /// `allow` or `deny`.
        action: Action,
        /// The field that has no effect.
        key: &'static str,
    },
    /// A rule key that belongs to a verifier the rule does not use (`keys` without cosign,
    /// `roles` under cosign alone, ...).
    #[error("{at}: rule `{pattern}`: `{key}` belongs to the {owner} verifier, which this rule does not use; add {owner} to `verifier` or remove `{key}`")]
    FieldNotForVerifier {
        /// Where (the field).
        at: Location,
        /// The rule's pattern.
        pattern: String,
        /// The verifier the field belongs to.
        owner: crate::policy::VerifierName,
        /// The field.
        key: &'static str,
    },
    /// A rule's cosign `keyless` block that cannot be used.
    #[error("{at}: rule `{pattern}`: {reason}")]
    BadKeyless {
        /// Where (`keyless`).
        at: Location,
        /// The rule's pattern.
        pattern: String,
        /// What is wrong.
        reason: crate::policy::KeylessError,
    },
    /// A rule's cosign `attestations` (or `signatures`) that cannot be used.
    #[error("{at}: rule `{pattern}`: {reason}")]
    BadAttestations {
        /// Where (`attestations`, `signatures` or `threshold`).
        at: Location,
        /// The rule's pattern.
        pattern: String,
        /// What is wrong (boxed: its variants carry the condition's path and regex).
        reason: Box<crate::policy::AttestationError>,
    },
    /// A rule whose verifier includes cosign but that lists no keys.
    #[error("{at}: rule `{pattern}` verifies with cosign but lists no keys; add `keys: [<PEM public key file>]` or `keyless: {{...}}`")]
    MissingCosignKeys {
        /// Where (`keys`, else `verifier`).
        at: Location,
        /// The rule's pattern.
        pattern: String,
    },
    /// A rule whose verifier includes notation but that has no `notation` block.
    #[error("{at}: rule `{pattern}` verifies with notation but has no `notation:` block; add `notation: {{trust_policy: <trustpolicy.oci.json or notation config dir>, trust_store: <notation trust store or config dir>}}`")]
    MissingNotation {
        /// Where (`verifier`).
        at: Location,
        /// The rule's pattern.
        pattern: String,
    },
    /// A cosign `threshold` of 0 or above the number of keys plus keyless identities.
    #[error(
        "{at}: rule `{pattern}` has threshold {threshold} but {signers} signer(s) can count \
         ({keys} key(s), {identities} keyless identit(y/ies)); use 1 to {signers}"
    )]
    BadThreshold {
        /// Where (`threshold`).
        at: Location,
        /// The rule's pattern.
        pattern: String,
        /// The threshold.
        threshold: usize,
        /// How many signers can count: `keys` plus `identities`.
        signers: usize,
        /// How many distinct key files the rule lists.
        keys: usize,
        /// How many keyless identities it lists.
        identities: usize,
    },
    /// Two rules of equal specificity that match a common reference.
    #[error("{at}: rule `{pattern}` and rule `{first_pattern}` (at {}) are equally specific and both match `{example}`; make one more specific or merge them", line(*first_line))]
    AmbiguousRules {
        /// Where (the later rule's `match`).
        at: Location,
        /// The later rule's pattern.
        pattern: String,
        /// The line of the earlier rule's `match`.
        first_line: Option<usize>,
        /// The earlier rule's pattern.
        first_pattern: String,
        /// A reference both match.
        example: String,
    },
}

// === impl Location ===

impl Location {
    pub(crate) fn new(file: Option<Arc<Path>>, position: Option<(usize, usize)>) -> Self {
        let narrow = |n: usize| u32::try_from(n).unwrap_or(0);
        let (line, column) = position.map_or((0, 0), |(l, c)| (narrow(l), narrow(c)));
        Self { file, line, column }
    }

    /// The configuration file, `None` when parsed from a string.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The line, from 1, when known.
    pub fn line(&self) -> Option<usize> {
        (self.line > 0).then_some(self.line as usize)
    }

    /// The column, from 1, when known.
    pub fn column(&self) -> Option<usize> {
        (self.column > 0).then_some(self.column as usize)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}", file.display())?,
            None => f.write_str("<config>")?,
        }
        if let Some(line) = self.line() {
            write!(f, ":{line}")?;
            if let Some(column) = self.column() {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

// === impl ConfigError ===

impl ConfigError {
    /// Where the error is, when it concerns the content of the configuration.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } => None,
            Self::Yaml { at, .. }
            | Self::ListenConflict { at, .. }
            | Self::ZeroCacheSize { at }
            | Self::ZeroLimit { at, .. }
            | Self::NoUpstreams { at }
            | Self::DuplicateUpstream { at, .. }
            | Self::MultipleDefaultUpstreams { at, .. }
            | Self::IncompleteCredentials { at, .. }
            | Self::MissingS3Settings { at }
            | Self::S3SettingsWithoutBackend { at }
            | Self::S3PlainHttp { at, .. }
            | Self::IncompleteS3Credentials { at, .. }
            | Self::S3KeyFile { at, .. }
            | Self::AdminTokenFile { at, .. }
            | Self::AuthFile { at, .. }
            | Self::MissingTokenKey { at, .. }
            | Self::ClientCertificatesWithoutTls { at }
            | Self::DuplicateCertificateSubject { at, .. }
            | Self::MissingTrustStateKey { at, .. }
            | Self::ReadPasswordFile { at, .. }
            | Self::EmptyPasswordFile { at, .. }
            | Self::DuplicateNotaryServer { at, .. }
            | Self::ZeroTtl { at, .. }
            | Self::TagTtlTooLong { at, .. }
            | Self::MissingNotaryServer { at, .. }
            | Self::UnknownNotaryServer { at, .. }
            | Self::TrustFieldsWithoutVerification { at, .. }
            | Self::FieldNotForVerifier { at, .. }
            | Self::MissingCosignKeys { at, .. }
            | Self::MissingNotation { at, .. }
            | Self::BadKeyless { at, .. }
            | Self::BadAttestations { at, .. }
            | Self::BadThreshold { at, .. }
            | Self::AmbiguousRules { at, .. } => Some(at),
        }
    }

    /// The line the error points at, when known.
    pub fn line(&self) -> Option<usize> {
        self.location().and_then(Location::line)
    }
}

/// `line 12`, for a second place in a message that already names the file.
fn line(line: Option<usize>) -> String {
    line.map_or_else(|| "an earlier entry".to_owned(), |l| format!("line {l}"))
}

fn known_names(known: &[String]) -> String {
    if known.is_empty() {
        "; notary_servers is empty".to_owned()
    } else {
        format!(" (defined: {})", known.join(", "))
    }
}
