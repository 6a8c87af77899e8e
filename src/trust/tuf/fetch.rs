//! Getting bytes from the TUF mirror: a [`Fetch`] trait (so tests can serve a repository from
//! disk) and [`HttpFetch`] over reqwest. Every read is bounded by the caller's `max_len` and
//! every request by a timeout: the mirror is not trusted to end a body or answer at all.

use std::time::Duration;

use crate::trust::BoxFuture;

/// Redirects followed for one metadata or target request.
const MAX_REDIRECTS: usize = 5;

/// Why a fetch failed (a 404 is not a failure: [`Fetch::get`] answers `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url} sent more than the {limit} bytes allowed for it")]
    TooLarge { url: String, limit: u64 },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer within {}s", timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    #[error("{url} is unreachable: {detail}")]
    Transport { url: String, detail: String },
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
}

/// A source of repository files.
pub trait Fetch: Send + Sync {
    /// GETs `url`, reading at most `max_len` bytes: `Ok(Some(body))`, `Ok(None)` when the
    /// file does not exist, or an error (a body longer than `max_len` is
    /// [`FetchError::TooLarge`]).
    fn get<'a>(
        &'a self,
        url: &'a str,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>>;
}

/// [`Fetch`] over HTTPS with reqwest: one timeout for the whole request, bodies read through
/// [`crate::http_client::read_limited`].
#[derive(Debug, Clone)]
pub struct HttpFetch {
    client: reqwest::Client,
    timeout: Duration,
}

// === impl HttpFetch ===

impl HttpFetch {
    /// `timeout` bounds each request from connect to the last body byte.
    pub fn new(timeout: Duration) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(crate::http_client::redirect_policy(MAX_REDIRECTS))
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(HttpFetch { client, timeout })
    }

    async fn get_inner(&self, url: &str, max_len: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout {
                    url: url.to_owned(),
                    timeout: self.timeout,
                }
            } else {
                FetchError::Transport {
                    url: url.to_owned(),
                    detail: crate::http_client::error_chain(&e.without_url()),
                }
            }
        };
        let response = self.client.get(url).send().await.map_err(transport)?;
        let status = response.status();
        // Object stores behind TUF CDNs answer 403 for a missing object when listing is not
        // allowed; both mean "no such file" to the client workflow (5.3.3 ends the root walk).
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        match crate::http_client::read_limited(response, max_len).await {
            Ok(body) => Ok(Some(body.to_vec())),
            Err(crate::http_client::ReadError::TooLarge) => Err(FetchError::TooLarge {
                url: url.to_owned(),
                limit: max_len,
            }),
            Err(crate::http_client::ReadError::Transport(e)) => Err(transport(e)),
        }
    }
}

impl Fetch for HttpFetch {
    fn get<'a>(
        &'a self,
        url: &'a str,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
        Box::pin(self.get_inner(url, max_len))
    }
}
