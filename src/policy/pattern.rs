//! Rule patterns over `registry/repository`, their specificity and their overlap.
//!
//! A reference is seen as a path of segments: the registry is the first segment and each
//! `/`-separated part of the repository is one more (`docker.io/library/nginx` has three).

use std::{cmp::Ordering, fmt, str::FromStr};

use super::de::deserialize_from_str;

/// A compiled `match` pattern.
///
/// Each `/`-separated segment of a pattern is one of:
/// - `*`: exactly one segment, any name;
/// - `**`: any number of segments, including zero;
/// - anything else: a literal segment.
///
/// `*` must stand alone in its segment: `team-*` is refused rather than guessed at, so the only
/// wildcards are the two above and specificity stays a simple count.
///
/// Literal segments match ASCII case-insensitively. Registry host names are case-insensitive, and
/// valid repository names are lowercase, so a case variant of a name must not slip past a more
/// specific rule.
///
/// Because a reference always has a non-empty repository, a pattern must be able to match at
/// least two segments: `docker.io` alone is refused (write `docker.io/**`). With `**` matching
/// zero segments, `registry.example.internal/team/**` also matches a repository named `team`
/// itself, and `docker.io/**/nginx` matches `docker.io/nginx`.
///
/// ```
/// use trustgate::policy::Pattern;
///
/// let p: Pattern = "docker.io/library/*".parse().unwrap();
/// assert!(p.matches("docker.io", "library/nginx"));
/// assert!(!p.matches("docker.io", "library/nginx/extra"));
///
/// let p: Pattern = "docker.io/**".parse().unwrap();
/// assert!(p.matches("docker.io", "library/nginx"));
/// assert!(p.matches("docker.io", "bitnami/charts/redis"));
/// assert!(!p.matches("quay.io", "library/nginx"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Box<str>,
    segments: Box<[Segment]>,
    specificity: Specificity,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Stored lowercase; compared case-insensitively.
    Literal(Box<str>),
    /// `*`
    One,
    /// `**`
    Any,
}

/// How specific a pattern is; when several rules match a reference, the greatest wins.
///
/// Compared field by field, the first difference deciding:
/// 1. more literal segments is more specific;
/// 2. then fewer `**`;
/// 3. then more `*`: with literals and `**` equal, each `*` demands one more segment, so the
///    pattern with more of them matches a narrower set (`a/*/**` is a subset of `a/**`);
/// 4. then a longer literal prefix (literal segments before the first wildcard).
///
/// | more specific             | less specific           | decided by        |
/// |---------------------------|-------------------------|-------------------|
/// | `docker.io/library/nginx` | `docker.io/library/*`   | literals 3 > 2    |
/// | `docker.io/library/*`     | `docker.io/**`          | literals 2 > 1    |
/// | `docker.io/library/*`     | `docker.io/**/nginx`    | `**` 0 < 1        |
/// | `docker.io/*`             | `docker.io/**`          | `**` 0 < 1        |
/// | `docker.io/*/**`          | `docker.io/**`          | `*` 1 > 0         |
/// | `docker.io/library/*`     | `docker.io/*/nginx`     | prefix 2 > 1      |
/// | `*/library/nginx`         | `docker.io/**`          | literals 2 > 1    |
/// | `docker.io/**`            | `**`                    | literals 1 > 0    |
///
/// Two patterns of equal specificity that can match the same reference are ambiguous and
/// refused when the policy is built: for example `docker.io/*/a/*` and `docker.io/*/*/b`
/// (equal on all four counts) both match `docker.io/x/a/b`. Rules of different specificity may
/// overlap freely; that is how a narrow rule carves an exception out of a broad one.
///
/// ```
/// use trustgate::policy::Pattern;
///
/// let spec = |p: &str| p.parse::<Pattern>().unwrap().specificity();
/// assert!(spec("docker.io/library/nginx") > spec("docker.io/library/*"));
/// assert!(spec("docker.io/library/*") > spec("docker.io/*/nginx"));
/// assert!(spec("*/library/nginx") > spec("docker.io/**"));
/// assert!(spec("docker.io/**") > spec("**"));
/// assert_eq!(spec("docker.io/*/a/*"), spec("docker.io/*/*/b"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Specificity {
    /// Number of literal segments.
    pub literals: usize,
    /// Number of `**` segments.
    pub any: usize,
    /// Number of `*` segments.
    pub one: usize,
    /// Number of literal segments before the first wildcard.
    pub prefix: usize,
}

/// Why a `match` pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is the empty string.
    #[error("empty pattern; use `**` to match every image")]
    Empty,
    /// A leading, trailing or doubled `/`.
    #[error("pattern `{pattern}` has an empty segment (leading, trailing or doubled `/`)")]
    EmptySegment {
        /// The pattern as written.
        pattern: String,
    },
    /// `*` mixed with other characters in one segment, or `***`.
    #[error(
        "segment `{segment}` of pattern `{pattern}` mixes `*` with other characters; \
         a segment is either a name, `*` (one segment) or `**` (any number of segments)"
    )]
    PartialWildcard {
        /// The pattern as written.
        pattern: String,
        /// The offending segment.
        segment: String,
    },
    /// A character that cannot appear in a registry or repository name.
    #[error("pattern `{pattern}` contains `{character}`, which is not valid in an image name")]
    InvalidCharacter {
        /// The pattern as written.
        pattern: String,
        /// The offending character.
        character: char,
    },
    /// `**/**` matches exactly what `**` matches.
    #[error("pattern `{pattern}` repeats `**/**`; write `**` once")]
    RepeatedDoubleStar {
        /// The pattern as written.
        pattern: String,
    },
    /// The pattern can only match a bare registry, which is never a full image reference.
    #[error(
        "pattern `{pattern}` names no repository and so matches no image; did you mean `{pattern}/**`?"
    )]
    NoRepository {
        /// The pattern as written.
        pattern: String,
    },
}

// === impl Pattern ===

impl Pattern {
    /// Parses and compiles a pattern (see the type's documentation for the syntax).
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let pattern = || text.to_owned();
        let mut segments = Vec::new();
        for part in text.split('/') {
            let segment = match part {
                "" => return Err(PatternError::EmptySegment { pattern: pattern() }),
                "**" if segments.last() == Some(&Segment::Any) => {
                    return Err(PatternError::RepeatedDoubleStar { pattern: pattern() })
                }
                "**" => Segment::Any,
                "*" => Segment::One,
                _ if part.contains('*') => {
                    return Err(PatternError::PartialWildcard {
                        pattern: pattern(),
                        segment: part.to_owned(),
                    })
                }
                _ => {
                    // Registry hosts (with port, or bracketed IPv6) and repository components;
                    // anything else (spaces, `?`, `{a,b}`) is a typo or another glob dialect.
                    let valid = |c: char| c.is_ascii_alphanumeric() || "._-:[]".contains(c);
                    if let Some(character) = part.chars().find(|&c| !valid(c)) {
                        return Err(PatternError::InvalidCharacter {
                            pattern: pattern(),
                            character,
                        });
                    }
                    Segment::Literal(part.to_ascii_lowercase().into())
                }
            };
            segments.push(segment);
        }
        if segments.len() < 2 && !segments.contains(&Segment::Any) {
            return Err(PatternError::NoRepository { pattern: pattern() });
        }
        let specificity = Specificity::of(&segments);
        Ok(Self {
            text: text.into(),
            segments: segments.into(),
            specificity,
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// How specific this pattern is, computed once at parse time.
    pub fn specificity(&self) -> Specificity {
        self.specificity
    }

    /// Whether the reference `registry/repository` matches; allocation-free.
    ///
    /// `registry` is the registry's configured name (for example `docker.io`) and `repository` a
    /// validated repository name (`library/nginx`).
    pub fn matches(&self, registry: &str, repository: &str) -> bool {
        let reference = Reference {
            registry,
            repository,
        };
        // Classic wildcard matching with `**` as the star and every other segment as a
        // single-unit matcher: on a mismatch, resume after the most recent `**` with it
        // swallowing one more segment. Backtracking to the latest star only is complete
        // because all other matchers consume exactly one segment.
        let segments = &*self.segments;
        let (mut p, mut t) = (0, Some(0));
        let mut star: Option<(usize, Option<usize>)> = None;
        loop {
            if let Some(Segment::Any) = segments.get(p) {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            let here = t.and_then(|t| reference.segment(t));
            match (segments.get(p), here) {
                (Some(seg), Some((text, next))) if seg.matches(text) => {
                    p += 1;
                    t = next;
                }
                (None, None) => return true,
                _ => match star {
                    Some((resume, Some(at))) => {
                        let Some((_, next)) = reference.segment(at) else {
                            return false;
                        };
                        star = Some((resume, next));
                        p = resume;
                        t = next;
                    }
                    _ => return false,
                },
            }
        }
    }

    /// A reference that both patterns match, or `None` when no reference matches both.
    ///
    /// Used at load time to refuse ambiguous rules; the example makes the error message
    /// concrete. The search walks both patterns segment by segment (states are positions in
    /// each plus the segment count, capped at 2 because a reference has at least two).
    pub fn overlap(&self, other: &Pattern) -> Option<String> {
        let mut search = OverlapSearch {
            a: &self.segments,
            b: &other.segments,
            seen: vec![false; (self.segments.len() + 1) * (other.segments.len() + 1) * 3],
            path: Vec::new(),
        };
        search.run(0, 0, 0).then(|| search.path.join("/"))
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

deserialize_from_str!(
    Pattern,
    "a pattern like `docker.io/library/*` or `docker.io/**`"
);

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.text).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// === impl Segment ===

impl Segment {
    fn matches(&self, text: &str) -> bool {
        match self {
            Segment::Literal(literal) => literal.eq_ignore_ascii_case(text),
            Segment::One => !text.is_empty(),
            Segment::Any => true,
        }
    }
}

// === impl Specificity ===

impl Specificity {
    fn of(segments: &[Segment]) -> Self {
        let count = |f: fn(&Segment) -> bool| segments.iter().filter(|s| f(s)).count();
        Self {
            literals: count(|s| matches!(s, Segment::Literal(_))),
            any: count(|s| matches!(s, Segment::Any)),
            one: count(|s| matches!(s, Segment::One)),
            prefix: segments
                .iter()
                .take_while(|s| matches!(s, Segment::Literal(_)))
                .count(),
        }
    }
}

impl Ord for Specificity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.literals
            .cmp(&other.literals)
            .then(other.any.cmp(&self.any))
            .then(self.one.cmp(&other.one))
            .then(self.prefix.cmp(&other.prefix))
    }
}

impl PartialOrd for Specificity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// === impl Reference ===

/// A reference walked segment by segment without splitting it into a vector.
struct Reference<'a> {
    registry: &'a str,
    repository: &'a str,
}

impl<'a> Reference<'a> {
    /// The segment at cursor `at` and the cursor after it (`None` at the end).
    ///
    /// Cursor 0 is the registry; cursor `1 + i` is byte offset `i` in the repository.
    fn segment(&self, at: usize) -> Option<(&'a str, Option<usize>)> {
        if at == 0 {
            let next = (!self.repository.is_empty()).then_some(1);
            return Some((self.registry, next));
        }
        let rest = self.repository.get(at - 1..)?;
        Some(match rest.find('/') {
            Some(end) => (&rest[..end], Some(at + end + 1)),
            None => (rest, None),
        })
    }
}

// === impl OverlapSearch ===

struct OverlapSearch<'a> {
    a: &'a [Segment],
    b: &'a [Segment],
    /// Visited `(i, j, k)` states; a state that failed once fails again.
    seen: Vec<bool>,
    /// The segments of the example reference built so far.
    path: Vec<&'a str>,
}

impl<'a> OverlapSearch<'a> {
    /// Whether some reference continues from `a[i..]`, `b[j..]` having produced `k` segments.
    fn run(&mut self, i: usize, j: usize, k: usize) -> bool {
        if i == self.a.len() && j == self.b.len() && k >= 2 {
            return true;
        }
        let state = (i * (self.b.len() + 1) + j) * 3 + k;
        if std::mem::replace(&mut self.seen[state], true) {
            return false;
        }
        // `**` may match zero segments.
        if self.a.get(i) == Some(&Segment::Any) && self.run(i + 1, j, k) {
            return true;
        }
        if self.b.get(j) == Some(&Segment::Any) && self.run(i, j + 1, k) {
            return true;
        }
        // Or both consume one common segment; `**` stays in place to consume more.
        let (Some(sa), Some(sb)) = (self.a.get(i), self.b.get(j)) else {
            return false;
        };
        let text = match (sa, sb) {
            (Segment::Literal(x), Segment::Literal(y)) if x == y => x,
            (Segment::Literal(_), Segment::Literal(_)) => return false,
            (Segment::Literal(x), _) | (_, Segment::Literal(x)) => x,
            _ => "x",
        };
        let ni = if *sa == Segment::Any { i } else { i + 1 };
        let nj = if *sb == Segment::Any { j } else { j + 1 };
        self.path.push(text);
        if self.run(ni, nj, (k + 1).min(2)) {
            return true;
        }
        self.path.pop();
        false
    }
}
