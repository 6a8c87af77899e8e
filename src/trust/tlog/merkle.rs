//! RFC 9162 (Certificate Transparency v2, which keeps RFC 6962's tree) Merkle inclusion
//! proofs.

use aws_lc_rs::digest;

/// Length of a SHA-256 tree hash.
pub const HASH_LEN: usize = 32;
/// Longest audit path of any tree a 64-bit size can describe.
pub const MAX_PATH: usize = 64;

/// Why an inclusion proof does not prove inclusion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
    #[error("the audit path has {0} hashes, more than a tree of this size needs")]
    PathTooLong(usize),
    #[error("the audit path is shorter than a tree of this size needs")]
    PathTooShort,
    #[error("a hash is {0} bytes, not {HASH_LEN}")]
    HashLength(usize),
    #[error("the audit path leads to another root hash")]
    RootMismatch,
}

/// RFC 9162 section 2.1.1: the hash of a leaf, `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> [u8; HASH_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(leaf);
    to_array(ctx.finish())
}

/// RFC 9162 section 2.1.1: the hash of an interior node, `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &[u8], right: &[u8]) -> [u8; HASH_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    to_array(ctx.finish())
}

fn to_array(d: digest::Digest) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// Verifies that `leaf` is the entry at `index` of the tree of `size` entries whose root is
/// `root`, given the audit path `path` (sibling hashes, leaf to root). An empty tree holds
/// no entry, so no proof verifies against it.
///
/// The algorithm is RFC 9162 section 2.1.3.2 step by step; the steps are numbered as there.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8],
    path: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), ProofError> {
    if root.len() != HASH_LEN {
        return Err(ProofError::HashLength(root.len()));
    }
    if path.len() > MAX_PATH {
        return Err(ProofError::PathTooLong(path.len()));
    }
    // 1. leaf_index >= tree_size fails (this includes every index of an empty tree).
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    // 2. fn = leaf_index, sn = tree_size - 1.
    let (mut fnode, mut snode) = (index, size - 1);
    // 3. r = hash (the leaf's hash).
    let mut r = leaf_hash(leaf);
    // 4. For each p in the inclusion path:
    for p in path {
        let p = p.as_ref();
        if p.len() != HASH_LEN {
            return Err(ProofError::HashLength(p.len()));
        }
        // 4a. sn == 0: the path is longer than the tree is deep.
        if snode == 0 {
            return Err(ProofError::PathTooLong(path.len()));
        }
        // 4b. LSB(fn) set, or fn == sn: p is a left sibling.
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // 4b.ii: past the right edge of an incomplete subtree, climb until fn is a right
            // child again (or the root's left edge).
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            // Otherwise p is a right sibling.
            r = node_hash(&r, p);
        }
        // 4c. Shift both once.
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. sn must be 0 (the path reached the root) and r must be the root hash.
    if snode != 0 {
        return Err(ProofError::PathTooShort);
    }
    if r.as_slice() != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}
