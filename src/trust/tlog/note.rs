//! C2SP signed notes (`C2SP/C2SP: signed-note.md`) carrying a transparency-log checkpoint
//! (`tlog-checkpoint.md`), as Rekor publishes them in a bundle's
//! `inclusionProof.checkpoint.envelope`.

use base64::Engine as _;

use super::{key::LogKey, merkle::HASH_LEN};

/// Largest note read. A checkpoint is a few hundred bytes, a witnessed one a few kilobytes.
pub const MAX_NOTE_SIZE: usize = 16 * 1024;
/// Most signature lines read (the log's own, plus witnesses' cosignatures).
pub const MAX_SIGNATURES: usize = 32;
/// signed-note.md: a signature line starts with an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// The body of a checkpoint whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (Rekor v1: `<host> - <tree ID>`).
    pub origin: String,
    pub size: u64,
    pub root_hash: [u8; HASH_LEN],
    /// Extension lines after the root hash, opaque here.
    pub extensions: Vec<String>,
}

/// Why a note is not a checkpoint signed by the trusted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("the note is {0} bytes, more than {MAX_NOTE_SIZE}")]
    TooLarge(usize),
    #[error("the note is malformed: {0}")]
    Malformed(&'static str),
    #[error("the note has more than {MAX_SIGNATURES} signature lines")]
    TooManySignatures,
    #[error("the checkpoint is malformed: {0}")]
    Checkpoint(&'static str),
    #[error("no signature of the note is by the log's key")]
    NoTrustedSignature,
    #[error("the signature with the log's key hint does not verify")]
    BadSignature,
    #[error("the checkpoint's origin {found:?} is not the log's origin {expected:?}")]
    OriginMismatch { expected: String, found: String },
}

/// A signature line: its key name, key ID and signature.
struct SignatureLine<'a> {
    name: &'a str,
    hint: [u8; 4],
    signature: Vec<u8>,
}

/// Verifies a signed checkpoint under `key` and returns its body.
///
/// signed-note.md: the text is everything up to and including the newline before the last
/// blank line; the signature lines follow it, each `— <name> <base64(key ID || signature)>`;
/// a verifier ignores lines of keys it does not know, and needs one by a key it trusts. A
/// line is the log's when its key ID is the one `key` has under the line's name
/// ([`LogKey::note_key_id`]: for Ed25519 the name enters the ID, for ECDSA it does not);
/// its signature is then checked in the key's scheme over the text (sigstore-go, Rekor's
/// `SignedNote.Verify`, rekor-tiles `pkg/note`). The body is then parsed as
/// tlog-checkpoint.md says. This does not pin the origin: a Rekor v1 log's origin carries a
/// tree ID that the trusted root does not give. Prefer [`verify_checkpoint_for_origin`]
/// where the origin is known.
pub fn verify_checkpoint(note: &[u8], key: &LogKey) -> Result<Checkpoint, NoteError> {
    verify(note, key, None)
}

/// Verifies a signed checkpoint under `key` whose log's origin is `origin`, as sigstore-go
/// verifies a Rekor v2 entry (`pkg/verify/tlog.go`: the origin is the host of the log's
/// `baseUrl`; rekor-tiles `pkg/note: NewNoteVerifier(origin, ...)`, and transparency-dev
/// `formats/log: ParseCheckpoint(cp, origin, verifier)`): the log's signature line must be
/// named `origin`, and so must the checkpoint's first line.
pub fn verify_checkpoint_for_origin(
    note: &[u8],
    key: &LogKey,
    origin: &str,
) -> Result<Checkpoint, NoteError> {
    verify(note, key, Some(origin))
}

fn verify(note: &[u8], key: &LogKey, origin: Option<&str>) -> Result<Checkpoint, NoteError> {
    let (text, signatures) = split(note)?;
    let mut failure = NoteError::NoTrustedSignature;
    let mut verified = false;
    for line in signatures {
        // golang.org/x/mod/sumdb/note: a verifier is known by its name and key ID together;
        // any other line is an unknown key's, skipped.
        if origin.is_some_and(|o| o != line.name) || line.hint != key.note_key_id(line.name) {
            continue;
        }
        if key.verifies(text.as_bytes(), &line.signature) {
            verified = true;
            break;
        }
        failure = NoteError::BadSignature;
    }
    if !verified {
        return Err(failure);
    }
    let checkpoint = parse_checkpoint(text)?;
    if let Some(expected) = origin {
        if checkpoint.origin != expected {
            return Err(NoteError::OriginMismatch {
                expected: expected.to_owned(),
                found: checkpoint.origin,
            });
        }
    }
    Ok(checkpoint)
}

/// Splits a note into its text and signature lines, within the bounds.
fn split(note: &[u8]) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    if note.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge(note.len()));
    }
    let note = std::str::from_utf8(note).map_err(|_| NoteError::Malformed("not UTF-8"))?;
    let at = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, sigs) = (&note[..at + 1], &note[at + 2..]);
    let sigs = sigs.strip_suffix('\n').ok_or(NoteError::Malformed(
        "the signatures do not end with a newline",
    ))?;
    if sigs.is_empty() {
        return Err(NoteError::Malformed("no signature line"));
    }
    if sigs.split('\n').count() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures);
    }
    let lines = sigs
        .split('\n')
        .map(|line| {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
                "a signature line does not start with an em dash",
            ))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("a signature line has no signature"))?;
            // signed-note.md: a key name is non-empty, has no whitespace and no `+`.
            if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
                return Err(NoteError::Malformed(
                    "a signature line's key name is invalid",
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if bytes.len() < 5 {
                return Err(NoteError::Malformed(
                    "a signature is shorter than its key ID",
                ));
            }
            let mut hint = [0u8; 4];
            hint.copy_from_slice(&bytes[..4]);
            Ok(SignatureLine {
                name,
                hint,
                signature: bytes[4..].to_vec(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((text, lines))
}

/// tlog-checkpoint.md: origin, tree size in ASCII decimal (no leading zeros), base64 root
/// hash, then non-empty extension lines; every line ends with a newline.
fn parse_checkpoint(text: &str) -> Result<Checkpoint, NoteError> {
    let body = text.strip_suffix('\n').ok_or(NoteError::Checkpoint(
        "the text does not end with a newline",
    ))?;
    let mut lines = body.split('\n');
    let origin = lines
        .next()
        .filter(|l| !l.is_empty())
        .ok_or(NoteError::Checkpoint("no origin line"))?;
    let size = lines
        .next()
        .ok_or(NoteError::Checkpoint("no tree size line"))?;
    if size.is_empty()
        || !size.bytes().all(|b| b.is_ascii_digit())
        || (size.len() > 1 && size.starts_with('0'))
    {
        return Err(NoteError::Checkpoint(
            "the tree size is not a decimal number",
        ));
    }
    let size: u64 = size
        .parse()
        .map_err(|_| NoteError::Checkpoint("the tree size is out of range"))?;
    let root = lines
        .next()
        .ok_or(NoteError::Checkpoint("no root hash line"))?;
    let root = base64::engine::general_purpose::STANDARD
        .decode(root)
        .map_err(|_| NoteError::Checkpoint("the root hash is not base64"))?;
    let root_hash: [u8; HASH_LEN] = root
        .try_into()
        .map_err(|_| NoteError::Checkpoint("the root hash is not a SHA-256 hash"))?;
    let extensions: Vec<String> = lines.map(str::to_owned).collect();
    if extensions.iter().any(String::is_empty) {
        return Err(NoteError::Checkpoint("an extension line is empty"));
    }
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root_hash,
        extensions,
    })
}
