//! `trustgate_trust_*`: trust-server round trips and how close cached trust data is to
//! expiring.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, Registry};
use time::OffsetDateTime;

/// A kind of TUF role, as the `role` label. Delegations (`targets/<name>`) share one value,
/// since their names come from trust data, which is not bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

const ALL_ROLES: [TrustRole; 5] = [
    TrustRole::Root,
    TrustRole::Timestamp,
    TrustRole::Snapshot,
    TrustRole::Targets,
    TrustRole::Delegation,
];

/// Trust fetch latency and trust-data expiry.
#[derive(Clone, Debug)]
pub struct TrustMetrics {
    fetch_duration: HistogramVec,
    expiry: GaugeVec,
    state_refused: IntCounterVec,
}

/// The soonest expiry per role kind of each trust server's cached data, published as
/// `trustgate_trust_expiry_seconds`: the minimum over every server, as seconds left at the
/// time of publishing. Verifiers report after each successful refresh
/// ([`TrustExpiry::update`]); a periodic [`TrustExpiry::publish`] keeps the countdown moving
/// between refreshes. A role kind no server has data for has no series.
#[derive(Debug)]
pub struct TrustExpiry {
    metrics: TrustMetrics,
    by_server: Mutex<HashMap<String, BTreeMap<TrustRole, OffsetDateTime>>>,
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

impl TrustRole {
    /// Every role kind, in declaration order.
    pub fn all() -> &'static [Self] {
        &ALL_ROLES
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
            state_refused: super::counter_vec(
                registry,
                "trustgate_trust_state_refused_total",
                "Refreshes that refused a stored trust state because it was corrupt or did not \
                 authenticate (written without the trust state key), by configured server name.",
                &["server"],
            ),
        }
    }

    /// Counts one refresh that refused the stored trust state of a GUN of `server` (a
    /// configured trust-server name, never a GUN).
    pub fn state_refused(&self, server: &str) {
        self.state_refused.with_label_values(&[server]).inc();
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

    /// Removes the expiry series of `role`: no cached trust data of that kind.
    pub fn clear_expiry(&self, role: TrustRole) {
        // Absent already is fine: there is nothing to remove.
        let _ = self.expiry.remove_label_values(&[role.as_str()]);
    }
}

// === impl TrustExpiry ===

impl TrustExpiry {
    /// Publishes into `metrics`; nothing is published before the first update.
    pub fn new(metrics: TrustMetrics) -> Self {
        Self {
            metrics,
            by_server: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces what `server` (a configured trust-server name) holds: the soonest expiry per
    /// role kind over all its cached trust data. Then publishes.
    pub fn update(&self, server: &str, soonest: BTreeMap<TrustRole, OffsetDateTime>) {
        self.lock().insert(server.to_owned(), soonest);
        self.publish();
    }

    /// Sets every role kind's gauge to the seconds left until its soonest expiry, now.
    pub fn publish(&self) {
        self.publish_at(OffsetDateTime::now_utc());
    }

    pub(super) fn publish_at(&self, now: OffsetDateTime) {
        let soonest = self.soonest();
        for role in TrustRole::all() {
            match soonest.get(role) {
                Some(at) => self.metrics.set_expiry(*role, (*at - now).as_seconds_f64()),
                None => self.metrics.clear_expiry(*role),
            }
        }
    }

    /// The soonest expiry per role kind across every server.
    pub fn soonest(&self) -> BTreeMap<TrustRole, OffsetDateTime> {
        let mut out = BTreeMap::new();
        for per_server in self.lock().values() {
            for (role, at) in per_server {
                out.entry(*role)
                    .and_modify(|t: &mut OffsetDateTime| *t = (*t).min(*at))
                    .or_insert(*at);
            }
        }
        out
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<TrustRole, OffsetDateTime>>> {
        self.by_server.lock().unwrap_or_else(|e| e.into_inner())
    }
}
