//! Transparency-log proofs, shared by the verifiers that trust a log: Merkle inclusion proofs
//! (RFC 9162 section 2.1.3), signed checkpoints (C2SP `signed-note` and `tlog-checkpoint`),
//! and Rekor v1 signed entry timestamps.
//!
//! Pure checks, no I/O: every input is what a bundle or a signature carries, and every bound
//! is fixed here or by what a trusted key signed. A log is trusted through its [`LogKey`];
//! sigstore-go (`pkg/tlog`, `pkg/verify/tlog.go`) and Rekor (`pkg/util/signed_note.go`,
//! `pkg/util/checkpoint.go`) are the reference implementations followed.

mod key;
mod merkle;
mod note;
mod set;

pub use key::{Algorithm, KeyError, LogKey};
pub use merkle::{leaf_hash, node_hash, verify_inclusion, ProofError, HASH_LEN, MAX_PATH};
pub use note::{
    verify_checkpoint, verify_checkpoint_for_origin, Checkpoint, NoteError, MAX_NOTE_SIZE,
    MAX_SIGNATURES,
};
pub use set::{canonical_payload, verify_set, RekorPayload};

/// Why a logged entry's proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    #[error(
        "the checkpoint is for another tree (size {checkpoint}) than the proof (size {proof}) \
         or another root hash"
    )]
    CheckpointMismatch { checkpoint: u64, proof: u64 },
}

/// Verifies that `leaf` is entry `index` of the tree of `size` entries with root `root`
/// (audit path `path`), and that the log's key signed a checkpoint of exactly that tree
/// (sigstore-go `tlog.VerifyInclusion`; Rekor `verify.VerifyInclusion` and
/// `VerifyCheckpointSignature`). An audit path alone does not fix the tree size (the path of
/// a leaf in a complete left subtree proves it in several sizes): the signed checkpoint does.
pub fn verify_inclusion_in_checkpoint(
    index: u64,
    size: u64,
    leaf: &[u8],
    path: &[impl AsRef<[u8]>],
    root: &[u8],
    checkpoint: &[u8],
    key: &LogKey,
) -> Result<Checkpoint, TlogError> {
    verify_inclusion(index, size, leaf, path, root)?;
    let signed = verify_checkpoint(checkpoint, key)?;
    same_tree(signed, size, root)
}

/// [`verify_inclusion_in_checkpoint`] for a log whose checkpoint origin is known (a Rekor v2
/// log: the host of its `baseUrl`), checked by [`verify_checkpoint_for_origin`] as
/// sigstore-go does (`pkg/verify/tlog.go`, rekor-tiles `pkg/verify: VerifyLogEntry`).
#[allow(clippy::too_many_arguments)]
pub fn verify_inclusion_in_checkpoint_for_origin(
    index: u64,
    size: u64,
    leaf: &[u8],
    path: &[impl AsRef<[u8]>],
    root: &[u8],
    checkpoint: &[u8],
    key: &LogKey,
    origin: &str,
) -> Result<Checkpoint, TlogError> {
    verify_inclusion(index, size, leaf, path, root)?;
    let signed = verify_checkpoint_for_origin(checkpoint, key, origin)?;
    same_tree(signed, size, root)
}

/// The signed checkpoint must be of the very tree the proof was checked against.
fn same_tree(signed: Checkpoint, size: u64, root: &[u8]) -> Result<Checkpoint, TlogError> {
    if signed.size != size || signed.root_hash.as_slice() != root {
        return Err(TlogError::CheckpointMismatch {
            checkpoint: signed.size,
            proof: size,
        });
    }
    Ok(signed)
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod tests;
