//! Where metadata comes from: a notary server over HTTP(S), or a directory laid out like the
//! server's path (`root.json`, `targets/releases.json`, `2.root.json`, ...).

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;

use super::error::FetchError;
use crate::http_client::{cert_failure, error_chain, read_limited, CertFailure, ReadError};
use crate::upstream::TOKEN_MAX_BYTES;

/// Which file of a GUN's trust data to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaName {
    pub role: String,
    /// Known sha256 (hex): the server is asked for the consistent name `<role>.<hex>.json`.
    pub checksum: Option<String>,
    /// A specific root version (`<version>.root.json`), used for root rotation.
    pub version: Option<i64>,
}

impl MetaName {
    pub fn latest(role: &str) -> Self {
        MetaName {
            role: role.to_owned(),
            checksum: None,
            version: None,
        }
    }

    pub fn by_checksum(role: &str, checksum: Option<String>) -> Self {
        MetaName {
            role: role.to_owned(),
            checksum,
            version: None,
        }
    }

    pub fn root_version(version: i64) -> Self {
        MetaName {
            role: "root".to_owned(),
            checksum: None,
            version: Some(version),
        }
    }

    fn plain_path(&self) -> String {
        match self.version {
            Some(v) => format!("{v}.{}.json", self.role),
            None => format!("{}.json", self.role),
        }
    }

    fn server_path(&self) -> String {
        match (&self.checksum, self.version) {
            (Some(sum), None) => format!("{}.{sum}.json", self.role),
            _ => self.plain_path(),
        }
    }
}

/// Timeouts for talking to a trust server.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

/// Redirects followed per request, as for registries.
const MAX_REDIRECTS: usize = crate::upstream::MAX_REDIRECTS;

/// A token service: its URL and `service` parameter.
type Realm = (String, Option<String>);

/// A notary server: `GET {url}/v2/{gun}/_trust/tuf/{name}`.
#[derive(Clone)]
pub struct HttpSource {
    base: String,
    client: reqwest::Client,
    timeouts: HttpTimeouts,
    /// Anonymous pull tokens, for servers behind distribution token auth (notary.docker.io
    /// and most deployments): `repository:<GUN>:pull`, as the Docker CLI asks.
    tokens: std::sync::Arc<crate::upstream::token::TokenCache>,
    /// The token service (realm, service) the server challenged with, once seen: later
    /// requests send a token up front instead of paying a 401 round trip each.
    realm: std::sync::Arc<std::sync::Mutex<Option<Realm>>>,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HttpSource {
    /// `ca_pem`: extra trust anchors (PEM bundle) added to the platform's roots.
    pub fn new(
        url: &str,
        ca_pem: Option<&[u8]>,
        timeouts: HttpTimeouts,
    ) -> Result<Self, FetchError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .redirect(crate::http_client::redirect_policy(MAX_REDIRECTS));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| FetchError::Io {
                path: "CA bundle".to_owned(),
                detail: format!("not a PEM certificate bundle: {e}"),
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| FetchError::Unreachable {
            url: url.to_owned(),
            detail: format!("cannot build an HTTP client: {e}"),
        })?;
        Ok(HttpSource {
            base: url.trim_end_matches('/').to_owned(),
            client,
            timeouts,
            tokens: Default::default(),
            realm: Default::default(),
        })
    }

    async fn fetch(&self, gun: &str, name: &MetaName, limit: u64) -> Result<Bytes, FetchError> {
        let url = format!("{}/v2/{gun}/_trust/tuf/{}", self.base, name.server_path());
        let send = |token: Option<&crate::upstream::token::Token>| {
            let mut request = self.client.get(&url);
            if let Some(token) = token {
                request = request.header(reqwest::header::AUTHORIZATION, token.header().clone());
            }
            request.send()
        };
        let known = self.realm.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut token = match known {
            Some(realm) => Some(self.token(gun, &url, realm, None).await?),
            None => None,
        };
        let mut response = send(token.as_ref())
            .await
            .map_err(|e| classify(&url, &e, self.timeouts))?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            let challenges = response
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok());
            let Some(crate::upstream::challenge::Challenge::Bearer { realm, service, .. }) =
                crate::upstream::challenge::select(challenges)
            else {
                return Err(FetchError::Status { status: 401, url });
            };
            let realm = (realm, service);
            *self.realm.lock().unwrap_or_else(|e| e.into_inner()) = Some(realm.clone());
            let fresh = self.token(gun, &url, realm, token.as_ref()).await?;
            token = Some(fresh);
            response = send(token.as_ref())
                .await
                .map_err(|e| classify(&url, &e, self.timeouts))?;
        }
        match response.status().as_u16() {
            200 => {}
            404 => return Err(FetchError::NotFound),
            status => return Err(FetchError::Status { status, url }),
        }
        // At most `limit` bytes whatever the server claims: endless-data attacks (TUF
        // 5.x "Limits" in tough; the caller's limit is per role).
        read_limited(response, limit).await.map_err(|e| match e {
            ReadError::TooLarge => FetchError::TooLarge { limit },
            ReadError::Transport(e) => classify(&url, &e, self.timeouts),
        })
    }
}

impl HttpSource {
    /// An anonymous pull token for the GUN from the server's token service; `rejected` is a
    /// token the server just refused, which must not be handed out again.
    async fn token(
        &self,
        gun: &str,
        url: &str,
        (realm, service): Realm,
        rejected: Option<&crate::upstream::token::Token>,
    ) -> Result<crate::upstream::token::Token, FetchError> {
        use crate::upstream::token;
        let key = token::TokenKey {
            realm,
            service,
            scope: Some(format!("repository:{gun}:pull")),
        };
        let auth_error = |detail: String| crate::upstream::UpstreamError::Auth {
            registry: self.base.clone(),
            realm: key.realm.clone(),
            detail,
        };
        self.tokens
            .get(&key, rejected, || async {
                let mut query = vec![("scope", key.scope.clone().unwrap_or_default())];
                if let Some(service) = &key.service {
                    query.push(("service", service.clone()));
                }
                let realm = reqwest::Url::parse_with_params(&key.realm, &query)
                    .map_err(|e| auth_error(format!("bad realm: {e}")))?;
                let response = self
                    .client
                    .get(realm)
                    .send()
                    .await
                    .map_err(|e| auth_error(format!("token service {}: {e}", key.realm)))?;
                if !response.status().is_success() {
                    return Err(auth_error(format!(
                        "token service {} answered HTTP {}",
                        key.realm,
                        response.status().as_u16()
                    )));
                }
                let body = read_limited(response, TOKEN_MAX_BYTES)
                    .await
                    .map_err(|e| match e {
                        ReadError::TooLarge => auth_error(format!(
                            "token service {}: the token response is larger than {}",
                            key.realm,
                            crate::upstream::fmt_bytes(TOKEN_MAX_BYTES)
                        )),
                        ReadError::Transport(e) => auth_error(format!(
                            "token service {}: {}",
                            key.realm,
                            error_chain(&e.without_url())
                        )),
                    })?;
                token::parse_response(&body, time::OffsetDateTime::now_utc()).map_err(auth_error)
            })
            .await
            .map_err(|e| FetchError::Unreachable {
                url: url.to_owned(),
                detail: e.to_string(),
            })
    }
}

/// Turns a transport error into words a user can act on; an expired server certificate is the
/// most common notary failure, so it gets its own message.
fn classify(url: &str, err: &reqwest::Error, timeouts: HttpTimeouts) -> FetchError {
    if err.is_timeout() {
        return FetchError::Timeout {
            url: url.to_owned(),
            seconds: timeouts.request.as_secs(),
        };
    }
    match cert_failure(err) {
        Some(CertFailure::Expired { detail }) => FetchError::TlsExpired {
            url: url.to_owned(),
            detail,
        },
        Some(CertFailure::Untrusted { detail }) => FetchError::TlsUntrusted {
            url: url.to_owned(),
            detail,
        },
        None => FetchError::Unreachable {
            url: url.to_owned(),
            detail: error_chain(err),
        },
    }
}

/// Where a verifier reads metadata from.
#[derive(Debug, Clone)]
pub enum Source {
    Http(HttpSource),
    /// A directory laid out like the server path; checksums are ignored (plain names only).
    Dir(PathBuf),
}

impl Source {
    /// Fetches one file, reading at most `limit` bytes.
    pub async fn fetch(&self, gun: &str, name: &MetaName, limit: u64) -> Result<Bytes, FetchError> {
        match self {
            Source::Http(http) => http.fetch(gun, name, limit).await,
            Source::Dir(dir) => {
                let path = dir.join(name.plain_path());
                let io = |e: std::io::Error| FetchError::Io {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                };
                use tokio::io::AsyncReadExt as _;
                let file = match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(FetchError::NotFound)
                    }
                    Err(e) => return Err(io(e)),
                };
                if file.metadata().await.map_err(io)?.len() > limit {
                    return Err(FetchError::TooLarge { limit });
                }
                // The limit holds even for a file that grows after the check.
                let mut bytes = Vec::new();
                file.take(limit.saturating_add(1))
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(io)?;
                if bytes.len() as u64 > limit {
                    return Err(FetchError::TooLarge { limit });
                }
                Ok(Bytes::from(bytes))
            }
        }
    }
}
