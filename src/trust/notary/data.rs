//! What verified trust data says: the targets of every verified role, who signed, and when
//! each piece expires. Built only by `update.rs` after every check passed.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

/// The role DCT consults first; any signer added with `docker trust signer add` can sign it.
pub const RELEASES: &str = "targets/releases";
/// The top-level targets role (the repository key).
pub const TARGETS: &str = "targets";

/// A signed tag: the manifest digest and size a role signed for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: i64,
}

/// A key as people see it: the TUF ID in metadata and the canonical ID that
/// `docker trust inspect` prints (they differ for certificates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub canonical_id: String,
    pub keytype: String,
}

/// One verified targets role (top-level or delegation).
#[derive(Debug, Clone, Serialize)]
pub struct RoleData {
    pub targets: BTreeMap<String, Target>,
    pub keys: Vec<KeyInfo>,
    pub threshold: i64,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// A delegation that was listed but not used, and why (expired, under threshold, not in the
/// snapshot). notary's client skips these with a warning; so do we, and we say so.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub role: String,
    pub reason: String,
}

/// Verified trust data of one GUN.
#[derive(Debug, Clone, Serialize)]
pub struct TrustData {
    pub gun: String,
    /// Every verified targets role, by name (`targets`, `targets/releases`, `targets/alice`).
    pub roles: BTreeMap<String, RoleData>,
    pub skipped: Vec<Skipped>,
    pub root_keys: Vec<KeyInfo>,
    /// Expiry of root, timestamp, snapshot (the targets roles carry their own).
    #[serde(with = "expiry_map")]
    pub expires: BTreeMap<String, OffsetDateTime>,
}

/// A tag resolved through an ordered list of roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub role: &'a str,
    pub target: &'a Target,
}

// === impl TrustData ===

impl TrustData {
    /// The first role in `order` that signed `tag` decides its digest (DCT:
    /// `GetTargetByName(tag, "targets/releases", "targets")`). Roles not in `order` never
    /// decide, whatever they signed.
    pub fn resolve<'a>(&'a self, tag: &str, order: &'a [impl AsRef<str>]) -> Option<Resolved<'a>> {
        order.iter().find_map(|role| {
            let role = role.as_ref();
            self.roles
                .get(role)
                .and_then(|r| r.targets.get(tag))
                .map(|target| Resolved { role, target })
        })
    }

    /// Every tag with its DCT resolution (`targets/releases`, then `targets`).
    pub fn signed_tags(&self) -> Vec<(String, Resolved<'_>)> {
        const ORDER: [&str; 2] = [RELEASES, TARGETS];
        let mut tags: Vec<&String> = ORDER
            .iter()
            .filter_map(|r| self.roles.get(*r))
            .flat_map(|r| r.targets.keys())
            .collect();
        tags.sort();
        tags.dedup();
        tags.into_iter()
            .filter_map(|t| self.resolve(t, &ORDER).map(|r| (t.clone(), r)))
            .collect()
    }

    /// Named signers: delegations other than `targets/releases`, as `docker trust inspect`
    /// lists them.
    pub fn signers(&self) -> impl Iterator<Item = (&str, &RoleData)> {
        self.roles.iter().filter_map(|(name, data)| {
            let signer = name.strip_prefix("targets/")?;
            (name != RELEASES).then_some((signer, data))
        })
    }

    /// Whether `role` signed exactly this digest for `tag`.
    pub fn role_signed(&self, role: &str, tag: &str, digest: &str) -> bool {
        self.roles
            .get(role)
            .and_then(|r| r.targets.get(tag))
            .is_some_and(|t| t.digest == digest)
    }

    /// Whether any verified role lists `digest` as a target (under any name).
    pub fn signs_digest(&self, digest: &str) -> bool {
        self.roles
            .values()
            .any(|r| r.targets.values().any(|t| t.digest == digest))
    }

    /// The soonest expiry across everything this data rests on.
    pub fn soonest_expiry(&self) -> Option<OffsetDateTime> {
        self.expires
            .values()
            .copied()
            .chain(self.roles.values().map(|r| r.expires))
            .min()
    }
}

mod expiry_map {
    use std::collections::BTreeMap;

    use serde::{ser::SerializeMap, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(map.len()))?;
        for (k, v) in map {
            m.serialize_entry(k, &super::super::error::fmt_time(v))?;
        }
        m.end()
    }
}
