//! Answering a registry's `WWW-Authenticate` challenge: Bearer tokens from the realm
//! (distribution `docs/spec/auth/token.md`) or basic credentials.
//!
//! The first request to a registry goes out bare; its challenge is remembered, so later
//! requests carry a (cached) token or the credentials up front and skip the 401 round trip.
//!
//! The challenge's realm is the registry's word. The configured credentials go to it only if
//! [`Upstream::withhold_credentials`] finds no reason not to (the upstream's own host or a
//! `token_realms` entry, and no `https` to `http` step down); otherwise the token is asked
//! for anonymously, which still pulls public images, and a warning is logged once per realm.
//! Refusing outright would gain nothing: the realm learns nothing from an anonymous request.

use http::{
    header::{ACCEPT, AUTHORIZATION},
    StatusCode,
};
use reqwest::Url;
use time::OffsetDateTime;

use super::challenge::Challenge;
use super::error::{self, from_reqwest, redact_url};
use super::token::{self, Token, TokenKey};
use super::{Auth, Get, Scheme, Upstream, UpstreamError, TOKEN_MAX_BYTES};

// === impl Upstream ===

impl Upstream {
    /// Credentials for a request before any challenge: whatever this registry asked for last.
    pub(super) async fn auth_up_front(
        &self,
        repo: Option<&str>,
    ) -> Result<Option<Auth>, UpstreamError> {
        let scheme = self
            .inner
            .scheme
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(self.inner.basic.clone().map(Auth::Basic)),
            Some(Scheme::Bearer { realm, service }) => {
                let key = TokenKey {
                    realm,
                    service,
                    scope: repo.map(pull_scope),
                };
                Ok(Some(Auth::Bearer(self.token(&key, None).await?)))
            }
        }
    }

    /// Credentials answering `challenge`; `sent` is what the refused request carried.
    pub(super) async fn answer(
        &self,
        challenge: Challenge,
        get: &Get<'_>,
        sent: Option<&Auth>,
    ) -> Result<Auth, UpstreamError> {
        let denied = |detail: &str| UpstreamError::Denied {
            registry: self.inner.registry.clone(),
            what: get.what.clone(),
            status: 401,
            detail: detail.to_owned(),
        };
        match challenge {
            Challenge::Basic => {
                self.remember(Scheme::Basic);
                match (&self.inner.basic, sent) {
                    (None, _) => Err(denied(
                        "the registry asks for basic auth and no credentials are configured",
                    )),
                    (Some(_), Some(Auth::Basic(_))) => {
                        Err(denied("the registry refused the configured credentials"))
                    }
                    (Some(basic), _) => Ok(Auth::Basic(basic.clone())),
                }
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                self.remember(Scheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                });
                let key = TokenKey {
                    realm,
                    service,
                    // The registry's own scope wins: it knows what the request needs.
                    scope: scope.or_else(|| get.repo.map(pull_scope)),
                };
                let rejected = match sent {
                    Some(Auth::Bearer(token)) => Some(token),
                    _ => None,
                };
                Ok(Auth::Bearer(self.token(&key, rejected).await?))
            }
        }
    }

    fn remember(&self, scheme: Scheme) {
        *self.inner.scheme.write().unwrap_or_else(|e| e.into_inner()) = Some(scheme);
    }

    async fn token(
        &self,
        key: &TokenKey,
        rejected: Option<&Token>,
    ) -> Result<Token, UpstreamError> {
        self.inner
            .tokens
            .get(key, rejected, || self.fetch_token(key))
            .await
    }

    /// `GET <realm>?service=<service>&scope=<scope>...` with basic credentials when configured.
    async fn fetch_token(&self, key: &TokenKey) -> Result<token::Fetched, UpstreamError> {
        let auth_error = |detail: String| UpstreamError::Auth {
            registry: self.inner.registry.clone(),
            realm: Url::parse(&key.realm)
                .map(|u| redact_url(&u))
                .unwrap_or_else(|_| "an invalid realm".to_owned()),
            detail,
        };
        let mut url = Url::parse(&key.realm)
            .map_err(|_| auth_error("the challenge's realm is not a URL".to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(auth_error(
                "the challenge's realm is not an http(s) URL".to_owned(),
            ));
        }
        let basic = match &self.inner.basic {
            Some(basic) => match self.withhold_credentials(&url) {
                None => Some(basic),
                Some(why) => {
                    self.warn_withheld(&url, why);
                    None
                }
            },
            None => None,
        };
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &key.service {
                query.append_pair("service", service);
            }
            // Token spec: several scopes are several `scope` parameters.
            for scope in key.scope.iter().flat_map(|s| s.split_whitespace()) {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self
            .inner
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .timeout(self.inner.timeouts.request);
        if let Some(basic) = basic {
            request = request.header(AUTHORIZATION, basic.clone());
        }
        tracing::debug!(
            registry = %self.inner.registry,
            realm = %redact_url(&url),
            scope = key.scope.as_deref().unwrap_or(""),
            "fetching a registry token"
        );
        let response = request
            .send()
            .await
            .map_err(|e| from_reqwest(e, &url, &self.inner.timeouts))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(UpstreamError::RateLimited {
                registry: self.inner.registry.clone(),
                retry_after: error::retry_after(response.headers(), OffsetDateTime::now_utc()),
            });
        }
        if matches!(status.as_u16(), 401 | 403) {
            let who = match (basic, &self.inner.basic) {
                (Some(_), _) => "the configured credentials",
                (None, Some(_)) => {
                    "anonymous access (the configured credentials are not sent to this \
                     realm: it is neither on the upstream's host nor in `token_realms`, or \
                     it is plain http)"
                }
                (None, None) => "anonymous access",
            };
            return Err(auth_error(format!(
                "the token service refused {who} (HTTP {})",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            let detail = self.error_detail(response).await;
            return Err(auth_error(format!(
                "HTTP {}{}",
                status.as_u16(),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            )));
        }
        let body = self
            .read_limited(
                response,
                TOKEN_MAX_BYTES,
                "the token response",
                "the token response limit",
            )
            .await?;
        token::parse_response(&body, OffsetDateTime::now_utc()).map_err(auth_error)
    }
}

impl Upstream {
    /// Why the configured credentials must not go to the token service at `realm`, or `None`
    /// when they may: it is on the upstream's own host (any port) or matches a
    /// `token_realms` entry, and it is `https` or the upstream itself is `http`. The realm
    /// comes from the registry's challenge: a hostile registry names its own collector.
    pub(super) fn withhold_credentials(&self, realm: &Url) -> Option<&'static str> {
        let base = &self.inner.base_url;
        if realm.scheme() == "http" && base.scheme() == "https" {
            return Some("it is plain http and the upstream is https");
        }
        let own_host = realm.host_str().is_some() && realm.host_str() == base.host_str();
        if own_host || self.inner.realms.iter().any(|r| r.matches(realm)) {
            return None;
        }
        Some("its host is neither the upstream's nor listed in `token_realms`")
    }

    /// Logs once per realm (among the last few) that credentials were withheld from it.
    fn warn_withheld(&self, realm: &Url, why: &'static str) {
        let shown = redact_url(realm);
        let first = {
            let mut warned = self.inner.warned.lock().unwrap_or_else(|e| e.into_inner());
            warned.put(shown.clone(), ()).is_none()
        };
        if first {
            tracing::warn!(
                registry = %self.inner.registry,
                realm = %shown,
                reason = why,
                "not sending the configured credentials to the token service the registry \
                 named; asking it anonymously"
            );
        }
    }
}

/// The token scope for pulling from `repo`.
pub(super) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}
