//! `trustgate_trust_*`: trust-server round trips and how close cached trust data is to
//! expiring.

use std::fmt;
use std::time::Duration;

use prometheus::{GaugeVec, HistogramVec, Registry};

/// A kind of TUF role, as the `role` label. Delegations (`targets/<name>`) share one value,
/// since their names come from trust data, which is not bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrustRole {
    /// `root`.
    Root,
    /// `timestamp`.
    Timestamp,
    /// `snapshot`.
    Snapshot,
    /// `targets`.
    Targets,
    /// Any `targets/<name>` delegation.
    Delegation,
}

/// Trust fetch latency and trust-data expiry.
#[derive(Clone, Debug)]
pub struct TrustMetrics {
    fetch_duration: HistogramVec,
    expiry: GaugeVec,
}

// === impl TrustRole ===

impl TrustRole {
    /// The label value, e.g. `timestamp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Timestamp => "timestamp",
            Self::Snapshot => "snapshot",
            Self::Targets => "targets",
            Self::Delegation => "delegation",
        }
    }

    /// The kind of a role named as in TUF metadata: `root`, `targets/releases`, ...
    ///
    /// `None` for a name that is no role at all.
    pub fn from_role_name(name: &str) -> Option<Self> {
        match name {
            "root" => Some(Self::Root),
            "timestamp" => Some(Self::Timestamp),
            "snapshot" => Some(Self::Snapshot),
            "targets" => Some(Self::Targets),
            _ if name.starts_with("targets/") => Some(Self::Delegation),
            _ => None,
        }
    }
}

impl fmt::Display for TrustRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl TrustMetrics ===

impl TrustMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
        Self {
            fetch_duration: super::histogram_vec(
                registry,
                "trustgate_trust_fetch_duration_seconds",
                "Time to fetch trust metadata from a trust server, by configured server name.",
                &["server"],
            ),
            expiry: super::gauge_vec(
                registry,
                "trustgate_trust_expiry_seconds",
                "Seconds until the soonest expiry among cached trust metadata of a role kind; \
                 negative once expired.",
                &["role"],
            ),
        }
    }

    /// Records one fetch from `server` (a configured trust-server name, never a GUN).
    pub fn fetch(&self, server: &str, elapsed: Duration) {
        self.fetch_duration
            .with_label_values(&[server])
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the seconds until the soonest expiry of cached trust data of `role` kind, across
    /// every repository. The caller computes the minimum; negative means already expired.
    pub fn set_expiry(&self, role: TrustRole, seconds_left: f64) {
        self.expiry
            .with_label_values(&[role.as_str()])
            .set(seconds_left);
    }
}
