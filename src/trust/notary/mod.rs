//! Notary v1 (TUF) trust data verification, as Docker Content Trust clients did it.
//!
//! `update` runs the client workflow over a `source` (a notary server or a directory) and
//! returns `TrustData`; `state` remembers the trusted root and versions between runs.

mod canonical;
mod data;
mod error;
mod keys;
mod schema;
mod source;
mod state;
mod update;
mod verify;

pub use canonical::{to_canonical, CanonicalError};
pub use data::{KeyInfo, Resolved, RoleData, Skipped, Target, TrustData, RELEASES, TARGETS};
pub use error::{fmt_time as format_time, FetchError, NotaryError};
pub use keys::{pin_ids_from_pem, tuf_key_id, KeyError, PublicKey};
pub use source::{HttpSource, HttpTimeouts, MetaName, Source};
pub use state::{
    GunState, Revision, Saved, StateKey, StateStore, DEFAULT_DEADLINE, MAX_STATE_SIZE, MIN_KEY_LEN,
};
pub use update::{Limits, NotaryClient, STATE_ATTEMPTS};
