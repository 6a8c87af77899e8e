//! Reading the files of a notation configuration: regular files only, bounded in size, and
//! certificate files as notation-core-go reads them (`x509/cert.go` `ReadCertificateFile`).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use base64::Engine as _;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    /// A symlink, a directory, or anything else that is not a regular file.
    NotRegular,
    /// Larger than the bound (given).
    TooLarge(u64),
    Io(io::Error),
}

/// The bytes of the regular file `path`, at most `max` of them. The path itself must not be
/// a symlink (checked with `symlink_metadata`), and the file opened must be the one looked
/// at (same device and inode), so a symlink swapped in between is not followed.
pub fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::NotFound),
        Err(e) => return Err(ReadError::Io(e)),
    };
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge(max));
    }
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Io(e),
    })?;
    let opened = file.metadata().map_err(ReadError::Io)?;
    if !opened.file_type().is_file() || !same_file(&meta, &opened) {
        return Err(ReadError::NotRegular);
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > max) {
        return Err(ReadError::TooLarge(max));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// The certificates (DER) of a certificate file, as notation-core-go `parseCertificates`
/// reads one: if the data holds a PEM block (Go's `pem.Decode`), every PEM block is a
/// certificate, whatever its label, and one that does not parse is an error; otherwise the
/// data is DER, one certificate after another (Go's `x509.ParseCertificates`: empty data
/// is no certificates). This differs on purpose from [`crate::trust::x509::pem_certificates`],
/// which keeps `CERTIFICATE` blocks and drops the rest.
pub fn parse_certificates(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let Some((first, mut rest)) = pem_decode(data) else {
        return parse_der_sequence(data);
    };
    let mut certs = vec![parse_one(first)?];
    while let Some((block, after)) = pem_decode(rest) {
        certs.push(parse_one(block)?);
        rest = after;
    }
    Ok(certs)
}

/// One DER certificate, nothing after it (Go `x509.ParseCertificate`).
fn parse_one(der: Vec<u8>) -> Result<Vec<u8>, String> {
    match X509Certificate::from_der(&der) {
        Ok(([], _)) => Ok(der),
        Ok(_) => Err("x509: trailing data".to_owned()),
        Err(e) => Err(format!("x509: malformed certificate: {e}")),
    }
}

/// DER certificates one after another.
fn parse_der_sequence(mut data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    while !data.is_empty() {
        let (rest, _) = X509Certificate::from_der(data)
            .map_err(|e| format!("x509: malformed certificate: {e}"))?;
        let used = data.len() - rest.len();
        let (cert, rest) = data.split_at(used);
        certs.push(cert.to_vec());
        data = rest;
    }
    Ok(certs)
}

/// Go's `encoding/pem` `Decode`: the first well-formed block's bytes and what follows it;
/// malformed blocks are passed over, `None` when there is no block.
fn pem_decode(data: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    const BEGIN: &[u8] = b"\n-----BEGIN ";
    const END: &[u8] = b"\n-----END ";
    const DASHES: &[u8] = b"-----";
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
    );
    let mut rest = data;
    loop {
        rest = match rest.strip_prefix(&BEGIN[1..]) {
            Some(after) => after,
            None => &rest[find(rest, BEGIN)? + BEGIN.len()..],
        };
        let (type_line, after) = line(rest);
        rest = after;
        let Some(label) = type_line.strip_suffix(DASHES) else {
            continue;
        };
        let mut headers = false;
        loop {
            if rest.is_empty() {
                return None;
            }
            let (header, next) = line(rest);
            if !header.contains(&b':') {
                break;
            }
            headers = true;
            rest = next;
        }
        let (end, trailer_at) = if !headers && rest.starts_with(&END[1..]) {
            (0, END.len() - 1)
        } else {
            match find(rest, END) {
                Some(i) => (i, i + END.len()),
                None => continue,
            }
        };
        let Some(trailer) = rest.get(trailer_at..) else {
            continue;
        };
        let Some((expected, rest_of_line)) = trailer.split_at_checked(label.len() + DASHES.len())
        else {
            continue;
        };
        if !expected.starts_with(label)
            || !expected.ends_with(DASHES)
            || !line(rest_of_line).0.is_empty()
        {
            continue;
        }
        let body: Vec<u8> = rest
            .get(..end)
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .collect();
        let Ok(bytes) = engine.decode(&body) else {
            continue;
        };
        let after_end = rest.get(end + END.len() - 1..).unwrap_or_default();
        return Some((bytes, line(after_end).1));
    }
}

/// Go `pem.getLine`: the first line without its line ending and trailing spaces and tabs,
/// and the rest.
fn line(data: &[u8]) -> (&[u8], &[u8]) {
    let (mut text, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let text = &data[..i];
            (text.strip_suffix(b"\r").unwrap_or(text), &data[i + 1..])
        }
        None => (data, &data[data.len()..]),
    };
    while let Some(t) = text.strip_suffix(b" ").or_else(|| text.strip_suffix(b"\t")) {
        text = t;
    }
    (text, rest)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
