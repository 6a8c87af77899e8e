//! Names in a rule's trust requirements: Notary roles, signers and root key pins.
//!
//! Each is checked once, when it is parsed, so the trust engine never sees a malformed one.

use std::{fmt, marker::PhantomData, path::PathBuf, str::FromStr};

use serde::de::{self, SeqAccess, Visitor};

use super::de::deserialize_from_str;

/// A Notary v1 targets role: `targets` or a delegation `targets/<name>`.
///
/// Delegation names follow notary's own check (`data.IsDelegation`): lowercase letters,
/// digits, `-`, `_` and `/`, no empty, `.` or `..` parts, under 256 characters in all.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoleName(Box<str>);

/// The roles a tag is resolved through, in order: non-empty and without repeats.
///
/// Defaults to `[targets/releases, targets]`, the order Docker Content Trust uses.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleList(Box<[RoleName]>);

/// A signer (`alice`) whose delegation role `targets/alice` must also have signed the digest.
///
/// Names follow `docker trust signer add`: a lowercase letter or digit, then lowercase letters,
/// digits, `_` or `-`. `releases` is refused as Docker refuses it: `targets/releases` is a
/// resolution role (see `roles`), not a signer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SignerName {
    /// `targets/<name>`, kept whole so the trust engine can look the role up without allocating.
    role: Box<str>,
}

/// Signers that must all have signed the same digest; without repeats, possibly empty.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SignerList(Box<[SignerName]>);

/// A pinned root key: how a rule fixes the trust root instead of trusting on first use.
///
/// Written as a 64-character hex key ID, or as the path of a PEM file (public key or
/// certificate). The trust engine interprets both; this type only tells them apart. A string of
/// hex digits of another length is refused, since it is most likely a truncated key ID; write a
/// file whose name is all hex digits as `./<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RootKeyPin {
    /// A key ID, lowercase hex. Either notary ID form (certificate or bare public key) may be
    /// given; the trust engine accepts both.
    KeyId(String),
    /// A PEM file, read by the trust engine. Relative paths are relative to the working
    /// directory.
    PemFile(PathBuf),
}

/// Why a role, signer or key pin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not `targets` or `targets/<name>`.
    #[error(
        "role `{0}` is not `targets` or `targets/<name>` (lowercase letters, digits, `-`, `_`, \
         `/`; no empty, `.` or `..` parts; under 256 characters)"
    )]
    Role(String),
    /// Not a valid signer name.
    #[error(
        "signer `{0}` is not a valid signer name (a lowercase letter or digit, then lowercase \
         letters, digits, `_` or `-`); name the signer, e.g. `alice` for `targets/alice`"
    )]
    Signer(String),
    /// `releases` is a resolution role, not a signer.
    #[error("`releases` cannot be a signer; `targets/releases` belongs in `roles`")]
    ReservedSigner,
    /// Hex digits, but not the 64 of a key ID.
    #[error(
        "root key `{0}` looks like a truncated key ID ({1} hex digits, expected 64); \
         write a file path as `./{0}`"
    )]
    TruncatedKeyId(String, usize),
    /// The empty string.
    #[error("root key is empty; give a 64-hex key ID or a PEM file path")]
    EmptyRootKey,
    /// An empty list of roles.
    #[error("`roles` is empty; list at least one role, e.g. `[targets/releases, targets]`")]
    NoRoles,
    /// The same entry twice in one list.
    #[error("`{0}` is listed twice")]
    Duplicate(String),
}

// === impl RoleName ===

impl RoleName {
    /// The top-level `targets` role.
    pub const TARGETS: &'static str = "targets";

    /// The role name, e.g. `targets/releases`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a delegation (`targets/<name>`) rather than `targets` itself.
    pub fn is_delegation(&self) -> bool {
        self.0.len() > Self::TARGETS.len()
    }
}

impl FromStr for RoleName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == Self::TARGETS {
            return Ok(Self(s.into()));
        }
        let valid_path = |rest: &str| {
            rest.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b))
            })
        };
        match s.strip_prefix("targets/") {
            Some(rest) if s.len() < 256 && valid_path(rest) => Ok(Self(s.into())),
            _ => Err(NameError::Role(s.to_owned())),
        }
    }
}

deserialize_from_str!(RoleName, "a role like `targets` or `targets/releases`");

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl RoleList ===

impl RoleList {
    /// Checks a list of roles: non-empty, no repeats.
    pub fn new(roles: Vec<RoleName>) -> Result<Self, NameError> {
        if roles.is_empty() {
            return Err(NameError::NoRoles);
        }
        check_unique(&roles)?;
        Ok(Self(roles.into()))
    }

    /// The roles in resolution order.
    pub fn as_slice(&self) -> &[RoleName] {
        &self.0
    }
}

impl Default for RoleList {
    fn default() -> Self {
        let role = |s: &str| RoleName(s.into());
        Self(Box::new([
            role("targets/releases"),
            role(RoleName::TARGETS),
        ]))
    }
}

impl<'de> serde::Deserialize<'de> for RoleList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(ListVisitor::new("a list of roles", Self::new))
    }
}

impl fmt::Debug for RoleList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

// === impl SignerName ===

impl SignerName {
    /// The signer's name, e.g. `alice`.
    pub fn name(&self) -> &str {
        &self.role["targets/".len()..]
    }

    /// The signer's delegation role, e.g. `targets/alice`.
    pub fn role(&self) -> &str {
        &self.role
    }
}

impl FromStr for SignerName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = s.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok =
            bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        // The role name `targets/<name>` must stay under notary's 256-character limit.
        if !first_ok || !rest_ok || s.len() >= 256 - "targets/".len() {
            return Err(NameError::Signer(s.to_owned()));
        }
        if s == "releases" {
            return Err(NameError::ReservedSigner);
        }
        Ok(Self {
            role: format!("targets/{s}").into(),
        })
    }
}

deserialize_from_str!(SignerName, "a signer name like `alice`");

impl fmt::Debug for SignerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.name(), f)
    }
}

impl fmt::Display for SignerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// === impl SignerList ===

impl SignerList {
    /// Checks a list of signers: no repeats.
    pub fn new(signers: Vec<SignerName>) -> Result<Self, NameError> {
        check_unique(&signers)?;
        Ok(Self(signers.into()))
    }

    /// The signers, as written.
    pub fn as_slice(&self) -> &[SignerName] {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for SignerList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(ListVisitor::new("a list of signer names", Self::new))
    }
}

impl fmt::Debug for SignerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

// === impl RootKeyPin ===

impl FromStr for RootKeyPin {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::EmptyRootKey);
        }
        if s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return match s.len() {
                64 => Ok(Self::KeyId(s.to_ascii_lowercase())),
                n => Err(NameError::TruncatedKeyId(s.to_owned(), n)),
            };
        }
        Ok(Self::PemFile(s.into()))
    }
}

deserialize_from_str!(RootKeyPin, "a 64-hex key ID or a PEM file path");

// === helpers ===

fn check_unique<T: PartialEq + fmt::Display>(items: &[T]) -> Result<(), NameError> {
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            return Err(NameError::Duplicate(item.to_string()));
        }
    }
    Ok(())
}

/// Collects a sequence and checks it with `check` inside the visitor, so a list-level error
/// (empty, repeated entry) points at the list and an item error at the item.
struct ListVisitor<T, L> {
    expecting: &'static str,
    check: fn(Vec<T>) -> Result<L, NameError>,
    _item: PhantomData<fn() -> T>,
}

impl<T, L> ListVisitor<T, L> {
    fn new(expecting: &'static str, check: fn(Vec<T>) -> Result<L, NameError>) -> Self {
        Self {
            expecting,
            check,
            _item: PhantomData,
        }
    }
}

impl<'de, T: serde::Deserialize<'de>, L> Visitor<'de> for ListVisitor<T, L> {
    type Value = L;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<L, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        (self.check)(items).map_err(de::Error::custom)
    }
}
