//! Fetching CRLs and OCSP responses from the peers certificates name, all of them hostile:
//! plain `http` URLs only (the spec: "support only HTTP CRL URLs"; notation-core-go's OCSP
//! and CRL fetchers refuse other schemes), every request bounded by the configured time
//! from connect to the last byte, bodies read under a byte bound as they stream, at most
//! [`MAX_REDIRECTS`] redirects and never from https back to http.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;

use crate::http_client::{error_chain, read_limited, redirect_policy, ReadError};

/// Redirects followed, at most.
pub const MAX_REDIRECTS: usize = 3;

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("unsupported scheme: {0}. Only supports URLs in HTTP protocol")]
    Scheme(String),
    #[error("exceeded timeout threshold of {:.2} seconds", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("failed to download with status code: {0}")]
    Status(u16),
    #[error("response size exceeds the limit: {0}")]
    TooLarge(u64),
}

/// A test's URL rewrite.
#[cfg(test)]
pub type Rewrite = std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>;

/// An HTTP client for revocation peers.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
    /// Tests point certificates' fixed URLs at a local server.
    #[cfg(test)]
    pub rewrite: Option<Rewrite>,
}

// === impl Http ===

impl Http {
    pub fn new(timeout: Duration) -> Result<Http, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(redirect_policy(MAX_REDIRECTS))
            .build()
            .map_err(|e| format!("cannot build the revocation HTTP client: {e}"))?;
        Ok(Http {
            client,
            timeout,
            #[cfg(test)]
            rewrite: None,
        })
    }

    /// `url` parsed and checked to be `http`.
    pub fn check_url(url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url).map_err(|_| FetchError::Url(url.to_owned()))?;
        if !parsed.scheme().eq_ignore_ascii_case("http") {
            return Err(FetchError::Scheme(parsed.scheme().to_owned()));
        }
        if parsed.host_str().is_none() {
            return Err(FetchError::Url(url.to_owned()));
        }
        Ok(parsed)
    }

    /// GET `url`; the body of a 200 answer, at most `limit` bytes.
    pub async fn get(&self, url: &str, limit: u64) -> Result<Bytes, FetchError> {
        let target = self.target(url)?;
        self.send(self.client.get(target), limit).await
    }

    /// POST `body` (of `content_type`) to `url`; the body of a 200 answer, at most `limit`
    /// bytes.
    pub async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        content_type: &'static str,
        limit: u64,
    ) -> Result<Bytes, FetchError> {
        let target = self.target(url)?;
        let request = self
            .client
            .post(target)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request, limit).await
    }

    fn target(&self, url: &str) -> Result<Url, FetchError> {
        let checked = Self::check_url(url)?;
        #[cfg(test)]
        if let Some(rewrite) = &self.rewrite {
            return Url::parse(&rewrite(checked.as_str())).map_err(|_| FetchError::Url(url.into()));
        }
        Ok(checked)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        limit: u64,
    ) -> Result<Bytes, FetchError> {
        let timeout = self.timeout;
        let transport = move |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout(timeout)
            } else {
                FetchError::Transport(error_chain(&e.without_url()))
            }
        };
        let exchange = async {
            let response = request.send().await.map_err(transport)?;
            if response.status() != reqwest::StatusCode::OK {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            read_limited(response, limit).await.map_err(|e| match e {
                ReadError::TooLarge => FetchError::TooLarge(limit),
                ReadError::Transport(e) => transport(e),
            })
        };
        // reqwest's own timeout covers the whole exchange; this one holds whatever it misses.
        tokio::time::timeout(timeout.saturating_add(Duration::from_millis(250)), exchange)
            .await
            .unwrap_or(Err(FetchError::Timeout(timeout)))
    }
}
