//! The one response body type every layer returns, and small constructors for it.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full, StreamBody};

/// Errors a body can fail with mid-stream (an upstream cut, a digest mismatch). Failing the
/// body makes hyper abort the response, so a client never sees a complete wrong blob.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: full bytes, empty, or a stream of chunks.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Wraps a stream of chunks as a body.
pub fn stream<S, E>(stream: S) -> Body
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let frames = futures_util::StreamExt::map(stream, |r| {
        r.map(http_body::Frame::data).map_err(Into::into)
    });
    BodyExt::boxed_unsync(StreamBody::new(frames))
}
