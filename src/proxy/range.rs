//! `Range` and `If-Range` on blob GETs (RFC 9110 14), as docker and containerd send them to
//! resume an interrupted layer download.
//!
//! One byte range is served (`bytes=a-b`, `bytes=a-`, `bytes=-n`). Anything else is ignored
//! and the whole blob is served with 200, as RFC 9110 14.2 allows: a malformed header, a
//! unit other than `bytes`, several ranges (clients that resume ask for one), or an
//! `If-Range` that does not match the blob's strong `ETag` (a date never matches: blobs
//! carry no `Last-Modified`).

use http::{header, HeaderMap};

/// One byte range as asked, before the blob's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `a-b`: bytes `a` to `b`, inclusive.
    FromTo(u64, u64),
    /// `a-`: from `a` to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

// === impl ByteRange ===

impl ByteRange {
    /// Parses a `Range` value; `None` for anything that is not exactly one valid byte range
    /// (which the caller ignores).
    pub fn parse(value: &str) -> Option<ByteRange> {
        let (unit, set) = value.split_once('=')?;
        if !unit.eq_ignore_ascii_case("bytes") {
            return None;
        }
        // `#rule` lists allow empty elements; they count for nothing.
        let mut specs = set
            .split(',')
            .map(|s| s.trim_matches([' ', '\t']))
            .filter(|s| !s.is_empty());
        let spec = specs.next()?;
        if specs.next().is_some() {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        match (number(first), last) {
            (None, _) if !first.is_empty() => None,
            (None, last) => number(last).map(ByteRange::Suffix),
            (Some(first), "") => Some(ByteRange::From(first)),
            (Some(first), last) => {
                let last = number(last)?;
                (last >= first).then_some(ByteRange::FromTo(first, last))
            }
        }
    }

    /// The first and last byte (inclusive) of a blob of `total` bytes this range selects;
    /// `None` when it is unsatisfiable (it starts at or after the end, a zero suffix, an
    /// empty blob).
    pub fn resolve(self, total: u64) -> Option<(u64, u64)> {
        let last = total.checked_sub(1)?;
        match self {
            ByteRange::FromTo(first, end) => (first <= last).then(|| (first, end.min(last))),
            ByteRange::From(first) => (first <= last).then_some((first, last)),
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((total - n.min(total), last)),
        }
    }
}

/// `1*DIGIT` as a `u64` (no sign, no spaces; too large is malformed).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The range a GET asks for and may be served, given the blob's `etag` (`"<digest>"`):
/// `None` to serve the whole blob.
pub fn requested(headers: &HeaderMap, etag: &str) -> Option<ByteRange> {
    let mut values = headers.get_all(header::RANGE).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let range = ByteRange::parse(value.to_str().ok()?)?;
    let mut conditions = headers.get_all(header::IF_RANGE).iter();
    match (conditions.next(), conditions.next()) {
        (None, _) => Some(range),
        (Some(condition), None) if if_range_matches(condition.as_bytes(), etag) => Some(range),
        _ => None,
    }
}

/// Whether an `If-Range` value holds for the blob: a strong comparison with its ETag (a weak
/// tag never matches, RFC 9110 13.1.5), and a date never does (there is no `Last-Modified`).
pub fn if_range_matches(condition: &[u8], etag: &str) -> bool {
    condition.trim_ascii() == etag.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{self, *};

    #[test]
    fn parses_one_byte_range() {
        assert_eq!(ByteRange::parse("bytes=0-9"), Some(FromTo(0, 9)));
        assert_eq!(ByteRange::parse("bytes=10-"), Some(From(10)));
        assert_eq!(ByteRange::parse("bytes=-5"), Some(Suffix(5)));
        assert_eq!(ByteRange::parse("BYTES=3-3"), Some(FromTo(3, 3)));
        assert_eq!(ByteRange::parse("bytes= 1-2 ,"), Some(FromTo(1, 2)));
        assert_eq!(ByteRange::parse("bytes=,0-"), Some(From(0)));
    }

    #[test]
    fn ignores_what_is_not_exactly_one_valid_range() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=--1",
            "bytes=1--2",
            "bytes=0-1,3-4",
            "bytes=0-1, -1",
            "items=0-1",
            "bytes 0-1",
            "bytes =0-1",
            "bytes=99999999999999999999-",
            "bytes=0x1-2",
        ] {
            assert_eq!(ByteRange::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn resolves_against_the_length() {
        assert_eq!(FromTo(0, 9).resolve(100), Some((0, 9)));
        assert_eq!(FromTo(90, 200).resolve(100), Some((90, 99)));
        assert_eq!(FromTo(100, 200).resolve(100), None);
        assert_eq!(From(10).resolve(100), Some((10, 99)));
        assert_eq!(From(99).resolve(100), Some((99, 99)));
        assert_eq!(From(100).resolve(100), None);
        assert_eq!(Suffix(5).resolve(100), Some((95, 99)));
        assert_eq!(Suffix(500).resolve(100), Some((0, 99)));
        assert_eq!(Suffix(0).resolve(100), None);
        assert_eq!(From(0).resolve(0), None);
        assert_eq!(Suffix(1).resolve(0), None);
        assert_eq!(
            FromTo(0, u64::MAX).resolve(u64::MAX),
            Some((0, u64::MAX - 1))
        );
    }

    #[test]
    fn if_range_is_a_strong_etag_match() {
        let etag = "\"sha256:abc\"";
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            h
        };
        let requested = |pairs: &[(&str, &str)]| super::requested(&headers(pairs), etag);
        assert_eq!(requested(&[]), None);
        assert_eq!(requested(&[("range", "bytes=1-2")]), Some(FromTo(1, 2)));
        assert_eq!(
            requested(&[("range", "bytes=1-2"), ("if-range", etag)]),
            Some(FromTo(1, 2))
        );
        for other in [
            "\"sha256:abd\"",
            "W/\"sha256:abc\"",
            "sha256:abc",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(
                requested(&[("range", "bytes=1-2"), ("if-range", other)]),
                None,
                "{other}"
            );
        }
        assert_eq!(
            requested(&[("range", "bytes=1-2"), ("range", "bytes=3-4")]),
            None
        );
        assert_eq!(requested(&[("range", "bytes=2-1")]), None);
    }
}
