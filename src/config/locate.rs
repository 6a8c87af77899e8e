//! Finding the line and column of a configuration item after deserialisation.
//!
//! Serde structs carry no positions, and semantic checks (an unknown notary server, two default
//! upstreams, ambiguous rules) run after deserialisation. To point at the offending item, the
//! source text is deserialised once more with a probe that walks a key path (for example
//! `policy.rules[3].notary`) and fails on purpose when it reaches the value: `yaml_serde` then
//! stamps the failure with that value's line and column. This is exact for block and flow
//! style, quoting, comments and aliases, unlike searching the text, and costs one extra parse
//! only when there is an error to report.

use std::{fmt, path::Path, sync::Arc};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::Location;

/// One step of a key path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(&'static str),
    /// A sequence index.
    Index(usize),
}

/// Where a configuration came from, kept so that validation can point into it.
#[derive(Clone, Default)]
pub(crate) struct Source {
    file: Option<Arc<Path>>,
    text: Option<Arc<str>>,
}

/// Marks the probe's own failure, so it is never confused with another YAML error.
const FOUND: &str = "\u{0}trustgate: probe reached its target";

// === impl Source ===

impl Source {
    pub(crate) fn new(file: Option<&Path>, text: &str) -> Self {
        Self {
            file: file.map(Arc::from),
            text: Some(text.into()),
        }
    }

    /// The location of the value at `path`, or just the file when it cannot be found (a
    /// configuration built in code, or a value filled in by a default).
    pub(crate) fn locate(&self, path: &[Seg]) -> Location {
        let found = self.text.as_deref().and_then(|text| {
            let err = Probe { path }
                .deserialize(yaml_serde::Deserializer::from_str(text))
                .err()?;
            err.to_string().contains(FOUND).then(|| err.location())?
        });
        Location::new(self.file.clone(), found.map(|l| (l.line(), l.column())))
    }

    /// The location and message of a deserialisation error, without the message's own
    /// `at line L column C` suffix, which [`Location`] already prints.
    pub(crate) fn yaml_error(&self, err: &yaml_serde::Error) -> (Location, String) {
        let mut message = err.to_string();
        let found = err.location();
        if let Some(loc) = &found {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if message.ends_with(&suffix) {
                message.truncate(message.len() - suffix.len());
            }
        }
        let at = Location::new(self.file.clone(), found.map(|l| (l.line(), l.column())));
        (at, message)
    }
}

impl fmt::Debug for Source {
    // The text is left out: it is long, and the file name says where it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

// === impl Probe ===

/// Walks `path` and fails with [`FOUND`] at its end.
struct Probe<'a> {
    path: &'a [Seg],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    // At the target, every `visit_*` left to its default fails with "invalid type ..., expected
    // <this>", which carries the marker: scalars of any type need no method of their own.
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path {
            [] => f.write_str(FOUND),
            _ => f.write_str("a mapping or sequence on the probed path"),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (key, rest) = match self.path {
            [] => return Err(de::Error::custom(FOUND)),
            [Seg::Key(key), rest @ ..] => (*key, rest),
            [Seg::Index(_), ..] => return Ok(()),
        };
        while let Some(k) = map.next_key::<String>()? {
            if k == key {
                return map.next_value_seed(Probe { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (index, rest) = match self.path {
            [] => return Err(de::Error::custom(FOUND)),
            [Seg::Index(index), rest @ ..] => (*index, rest),
            [Seg::Key(_), ..] => return Ok(()),
        };
        for _ in 0..index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe { path: rest }).map(drop)
    }
}
