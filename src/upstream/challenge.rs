//! `WWW-Authenticate` parsing (RFC 9110 section 11.6.1, RFC 7235 section 4.1).
//!
//! A header holds one or more challenges separated by commas, and parameter values may be
//! quoted strings that themselves contain commas (`scope="repository:a:pull,push"`), so a
//! split on `,` is wrong. This is a small tokenizer instead: a comma ends a parameter, and a
//! challenge ends where the next item is a `scheme` rather than a `name=value`.

use super::token::MAX_KEY_BYTES;

/// One challenge: an auth scheme (lowercased) and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawChallenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

/// A challenge the client knows how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Distribution token auth: fetch a token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
        /// Space-separated scopes, as the registry asked for them.
        scope: Option<String>,
    },
    /// HTTP basic auth with the configured credentials.
    Basic,
}

/// Why a header did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChallengeError {
    #[error("unterminated quoted string")]
    Unterminated,
    #[error("unexpected character {0:?}")]
    Unexpected(char),
}

// === parsing ===

/// Parses every challenge in one header value.
pub(crate) fn parse(header: &str) -> Result<Vec<RawChallenge>, ChallengeError> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_separators();
        let Some(scheme) = p.token() else {
            return match p.peek() {
                None => Ok(out),
                Some(c) => Err(ChallengeError::Unexpected(char::from(c))),
            };
        };
        let mut challenge = RawChallenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        p.skip_spaces();
        // Parameters until the end of input or an item that is not `name=`.
        let mut first = true;
        loop {
            let start = p.i;
            let Some(name) = p.token() else { break };
            p.skip_spaces();
            if p.peek() != Some(b'=') {
                if first {
                    // token68 without padding, right after the scheme (`Negotiate abc`).
                    challenge.params.push((String::new(), name.to_owned()));
                } else {
                    // A new challenge's scheme: hand it back to the outer loop.
                    p.i = start;
                }
                break;
            }
            first = false;
            p.i += 1;
            if challenge.params.is_empty() && matches!(p.peek(), Some(b'=') | None) {
                // token68 (`Negotiate abc==`): keep it under an empty name.
                while p.peek() == Some(b'=') {
                    p.i += 1;
                }
                let raw = std::str::from_utf8(&p.s[start..p.i]).unwrap_or_default();
                challenge.params.push((String::new(), raw.to_owned()));
                break;
            }
            p.skip_spaces();
            let value = p.value()?;
            challenge.params.push((name.to_ascii_lowercase(), value));
            p.skip_spaces();
            match p.peek() {
                Some(b',') => p.skip_separators(),
                None => break,
                Some(c) => return Err(ChallengeError::Unexpected(char::from(c))),
            }
        }
        out.push(challenge);
    }
}

/// Picks the challenge to answer from all `WWW-Authenticate` values of a response: Bearer
/// (with a realm) over Basic, since token auth is what registries expect; `None` when nothing
/// usable is offered. Unparseable headers are skipped: another header may still be usable, and
/// so are Bearer challenges with a realm, service or scope longer than
/// [`MAX_KEY_BYTES`](super::token::MAX_KEY_BYTES).
pub(crate) fn select<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for header in headers {
        for raw in parse(header).unwrap_or_default() {
            match raw.scheme.as_str() {
                "bearer" => {
                    // The parameters become a token cache key: a peer must not make it large.
                    let long = ["realm", "service", "scope"]
                        .iter()
                        .any(|name| raw.param(name).is_some_and(|v| v.len() > MAX_KEY_BYTES));
                    if long {
                        continue;
                    }
                    if let Some(realm) = raw.param("realm").filter(|r| !r.is_empty()) {
                        return Some(Challenge::Bearer {
                            realm: realm.to_owned(),
                            service: raw.param("service").map(str::to_owned),
                            scope: raw
                                .param("scope")
                                .filter(|s| !s.trim().is_empty())
                                .map(str::to_owned),
                        });
                    }
                }
                "basic" => basic = true,
                _ => {}
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

// === impl RawChallenge ===

impl RawChallenge {
    /// The first value of parameter `name` (lowercase).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

// === impl Parser ===

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Spaces and commas: empty list elements are allowed (RFC 9110 section 5.6.1).
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// An RFC 9110 token (`tchar`), plus `/` so token68 values parse as one token.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(|c| is_tchar(c) || c == b'/') {
            self.i += 1;
        }
        (self.i > start).then(|| std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default())
    }

    /// A quoted string (with `\` escapes) or a bare value. Bare values are read leniently up
    /// to the next comma or space: some registries send unquoted URLs, which contain `:` and
    /// `/`, characters a strict token would stop at.
    fn value(&mut self) -> Result<String, ChallengeError> {
        if self.peek() == Some(b'"') {
            self.i += 1;
            let mut out = Vec::new();
            loop {
                match self.peek() {
                    None => return Err(ChallengeError::Unterminated),
                    Some(b'"') => {
                        self.i += 1;
                        return Ok(String::from_utf8_lossy(&out).into_owned());
                    }
                    Some(b'\\') => {
                        let escaped = self.s.get(self.i + 1).ok_or(ChallengeError::Unterminated)?;
                        out.push(*escaped);
                        self.i += 2;
                    }
                    Some(c) => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
        }
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| !matches!(c, b',' | b' ' | b'\t' | b'"'))
        {
            self.i += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(scheme: &str, params: &[(&str, &str)]) -> RawChallenge {
        RawChallenge {
            scheme: scheme.to_owned(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn parses_challenges() {
        let cases: Vec<(&str, Vec<RawChallenge>)> = vec![
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
                vec![raw(
                    "bearer",
                    &[
                        ("realm", "https://auth.docker.io/token"),
                        ("service", "registry.docker.io"),
                        ("scope", "repository:library/alpine:pull"),
                    ],
                )],
            ),
            // A comma inside a quoted value does not end the parameter.
            (
                r#"Bearer realm="https://r/token",scope="repository:a/b:pull,push",service="s""#,
                vec![raw(
                    "bearer",
                    &[
                        ("realm", "https://r/token"),
                        ("scope", "repository:a/b:pull,push"),
                        ("service", "s"),
                    ],
                )],
            ),
            // Several scopes separated by spaces.
            (
                r#"Bearer realm="r",scope="repository:a:pull repository:b:pull""#,
                vec![raw(
                    "bearer",
                    &[
                        ("realm", "r"),
                        ("scope", "repository:a:pull repository:b:pull"),
                    ],
                )],
            ),
            // Escapes, spaces around `=`, case-insensitive names.
            (
                r#"BEARER Realm = "a\"b\\c" , Service=x"#,
                vec![raw("bearer", &[("realm", r#"a"b\c"#), ("service", "x")])],
            ),
            (
                r#"Basic realm="basic-realm""#,
                vec![raw("basic", &[("realm", "basic-realm")])],
            ),
            ("Basic", vec![raw("basic", &[])]),
            // Two challenges in one header, the second with a comma in a quoted value.
            (
                r#"Basic realm="x, y", Bearer realm="https://t",service="s""#,
                vec![
                    raw("basic", &[("realm", "x, y")]),
                    raw("bearer", &[("realm", "https://t"), ("service", "s")]),
                ],
            ),
            // Unquoted URL values, as some registries send them.
            (
                "Bearer realm=https://t.example/token?x=1,service=reg",
                vec![raw(
                    "bearer",
                    &[("realm", "https://t.example/token?x=1"), ("service", "reg")],
                )],
            ),
            // token68, then another challenge.
            (
                r#"Negotiate abc/+d==, Basic realm="r""#,
                vec![
                    raw("negotiate", &[("", "abc/+d==")]),
                    raw("basic", &[("realm", "r")]),
                ],
            ),
            // Empty list elements and a trailing comma.
            (
                r#" , Bearer realm="r",,error="insufficient_scope","#,
                vec![raw(
                    "bearer",
                    &[("realm", "r"), ("error", "insufficient_scope")],
                )],
            ),
            (r#"Bearer realm="""#, vec![raw("bearer", &[("realm", "")])]),
            ("Negotiate abc", vec![raw("negotiate", &[("", "abc")])]),
            ("", vec![]),
        ];
        for (header, want) in cases {
            assert_eq!(parse(header), Ok(want), "header: {header}");
        }
    }

    #[test]
    fn rejects_malformed_headers() {
        let cases = [
            (
                r#"Bearer realm="unterminated"#,
                ChallengeError::Unterminated,
            ),
            (r#"Bearer realm="ends in \"#, ChallengeError::Unterminated),
            (r#"Bearer realm="r" junk"#, ChallengeError::Unexpected('j')),
            (r#"="r""#, ChallengeError::Unexpected('=')),
            (
                r#"Bearer realm="r"service="s""#,
                ChallengeError::Unexpected('s'),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(parse(header), Err(want), "header: {header}");
        }
    }

    #[test]
    fn selects_bearer_over_basic() {
        let bearer = Challenge::Bearer {
            realm: "https://t".to_owned(),
            service: Some("s".to_owned()),
            scope: None,
        };
        let cases: Vec<(Vec<&str>, Option<Challenge>)> = vec![
            (
                vec![
                    r#"Basic realm="x""#,
                    r#"Bearer realm="https://t",service="s""#,
                ],
                Some(bearer.clone()),
            ),
            (
                vec![r#"Basic realm="x", Bearer realm="https://t",service="s",scope=" ""#],
                Some(bearer),
            ),
            (vec![r#"Basic realm="x""#], Some(Challenge::Basic)),
            // A Bearer challenge without a realm cannot be answered.
            (vec![r#"Bearer service="s""#], None),
            (
                vec![r#"Bearer realm="""#, r#"Basic"#],
                Some(Challenge::Basic),
            ),
            (vec![r#"Negotiate abc"#], None),
            // A malformed header does not hide a good one.
            (
                vec![r#"Bearer realm="x"#, r#"Basic"#],
                Some(Challenge::Basic),
            ),
            (vec![], None),
        ];
        for (headers, want) in cases {
            assert_eq!(
                select(headers.iter().copied()),
                want,
                "headers: {headers:?}"
            );
        }
    }

    /// A peer cannot make token cache keys large: an oversized parameter drops the challenge.
    #[test]
    fn oversized_bearer_challenges_are_skipped() {
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        for header in [
            format!(r#"Bearer realm="https://t/{long}""#),
            format!(r#"Bearer realm="https://t",service="{long}""#),
            format!(r#"Bearer realm="https://t",scope="{long}""#),
        ] {
            assert_eq!(select([header.as_str()]), None);
            let with_basic = [header.as_str(), "Basic"];
            assert_eq!(select(with_basic), Some(Challenge::Basic));
        }
        let fits = format!(r#"Bearer realm="https://t",scope="{}""#, &long[1..]);
        assert!(matches!(
            select([fits.as_str()]),
            Some(Challenge::Bearer { .. })
        ));
    }
}
