//! What this instance has verified before, per GUN: the trusted root (trust on first use, then
//! rotated only through signed roots) and the last verified version of every role (rollback
//! protection). It lives on disk so that a restart does not reset either.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use super::{error::NotaryError, schema};

/// The persisted state of one GUN.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GunState {
    /// The GUN, for people reading the file; the file name is a hash of it.
    pub gun: String,
    /// Exact bytes of the trusted root.json, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Last verified version per role.
    #[serde(default)]
    pub versions: BTreeMap<String, i64>,
}

impl GunState {
    pub fn root_bytes(&self) -> Option<Vec<u8>> {
        self.root.as_deref().and_then(|r| schema::b64(r).ok())
    }

    pub fn version(&self, role: &str) -> Option<i64> {
        self.versions.get(role).copied()
    }
}

/// A directory of per-GUN state files.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    /// A GUN may hold any character a registry allows (`:`, `/`, `.`), so the file is named by
    /// its hash: no GUN can name a path outside the directory.
    fn path(&self, gun: &str) -> PathBuf {
        let h = digest::digest(&digest::SHA256, gun.as_bytes());
        self.dir.join(format!("{}.json", hex::encode(h)))
    }

    pub async fn load(&self, gun: &str) -> Result<GunState, NotaryError> {
        let path = self.path(gun);
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let state: GunState =
                    serde_json::from_slice(&bytes).map_err(|e| state_err(&path, e))?;
                if state.gun != gun {
                    return Err(state_err(&path, "belongs to another GUN"));
                }
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GunState {
                gun: gun.to_owned(),
                ..GunState::default()
            }),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    /// Writes atomically: a temporary file in the same directory, fsynced, then renamed over
    /// the old one, so a crash leaves either the old or the new state, never a torn file.
    pub async fn save(&self, state: &GunState) -> Result<(), NotaryError> {
        let path = self.path(&state.gun);
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| state_err(&path, e))?;
        let dir = self.dir.clone();
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let result = tokio::task::spawn_blocking({
            let (path, tmp) = (path.clone(), tmp.clone());
            move || -> std::io::Result<()> {
                use std::io::Write as _;
                std::fs::create_dir_all(&dir)?;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                Ok(())
            }
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                let _ = std::fs::remove_file(&tmp);
                Err(state_err(&path, e))
            }
            Err(e) => Err(state_err(&path, e)),
        }
    }
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> NotaryError {
    NotaryError::State {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}
