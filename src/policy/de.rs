//! Deserialising validated types from strings, with the error raised where the value is.
//!
//! The error must be created inside the visitor: the YAML deserializer then attaches the line
//! and column of the scalar itself. `#[serde(try_from = "String")]` would raise it after the
//! string was read, and the error would point at the enclosing mapping instead.

use std::{fmt, marker::PhantomData, str::FromStr};

use serde::de::{self, Visitor};

/// Parses a string scalar with `T::from_str`, reporting `T::Err` at the scalar.
pub(crate) struct FromStrVisitor<T> {
    expecting: &'static str,
    _parse: PhantomData<fn() -> T>,
}

impl<T> FromStrVisitor<T> {
    pub(crate) fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            _parse: PhantomData,
        }
    }
}

impl<T> Visitor<'_> for FromStrVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

/// Implements `Deserialize` for a `FromStr` type through [`FromStrVisitor`].
macro_rules! deserialize_from_str {
    ($ty:ty, $expecting:literal) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str($crate::policy::de::FromStrVisitor::new($expecting))
            }
        }
    };
}
pub(crate) use deserialize_from_str;
