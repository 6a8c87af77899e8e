//! Tokens `/token` issues: JWTs (RFC 7519) signed with HMAC-SHA256 (`HS256`).
//!
//! Only trustgate itself checks them (clients treat a token as opaque), so a shared-secret
//! MAC is enough: one key file, no public key to distribute, verification in constant time
//! by `aws-lc-rs`, the same crypto provider as TLS. Claims follow distribution's token
//! format (`access: [{type, name, actions}]`) plus the principal's `groups`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{Principal, SERVICE};

/// The signing key.
pub struct TokenKey(hmac::Key);

/// Why a token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with JSON claims.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// Past `exp` (or not yet valid).
    #[error("token expired")]
    Expired,
}

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer and audience: [`SERVICE`].
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The principal.
    pub sub: String,
    /// The principal's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Granted access.
    #[serde(default)]
    pub access: Vec<Access>,
}

/// One granted resource, as in distribution's tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `repository`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name.
    pub name: String,
    /// The actions (`pull`).
    pub actions: Vec<String>,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

// === impl TokenKey ===

impl TokenKey {
    /// A key from the key file's bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The compact JWT of `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(HEADER);
        // Serialising plain strings and numbers cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let input = format!("{header}.{payload}");
        let tag = hmac::sign(&self.0, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of `token` if its signature matches and it is valid at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        let input = &token[..header.len() + 1 + payload.len()];
        hmac::verify(&self.0, input.as_bytes(), &tag).map_err(|_| TokenError::BadSignature)?;
        // Signed by us: the header can only be ours.
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.aud != SERVICE {
            return Err(TokenError::BadSignature);
        }
        let now = seconds(now);
        if now >= claims.exp || now + 60 < claims.nbf {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

// === impl Claims ===

impl Claims {
    /// Claims for `principal`, granting `access`, valid from `now` for `ttl`.
    pub fn new(principal: &Principal, access: Vec<Access>, now: SystemTime, ttl: Duration) -> Self {
        let iat = seconds(now);
        Self {
            iss: SERVICE.to_owned(),
            aud: SERVICE.to_owned(),
            sub: principal.name.clone(),
            groups: principal.groups.clone(),
            iat,
            nbf: iat,
            exp: iat + ttl.as_secs().max(1),
            access,
        }
    }

    /// Whether the claims grant `pull` on repository `name`.
    pub fn grants_pull(&self, name: &str) -> bool {
        self.access.iter().any(|a| {
            a.kind == "repository" && a.name == name && a.actions.iter().any(|x| x == "pull")
        })
    }
}

// === impl Access ===

impl Access {
    /// `pull` on repository `name`.
    pub fn pull(name: impl Into<String>) -> Self {
        Self {
            kind: "repository".to_owned(),
            name: name.into(),
            actions: vec!["pull".to_owned()],
        }
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
