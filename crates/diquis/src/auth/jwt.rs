//! Access tokens: HS256 JWTs with Diquis's claims (`sub` = tenant-qualified user name, `uid`,
//! `email`, `tenant`, `roles`), plus a `csrf` claim for cookie sessions.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use super::Identity;
use crate::config::settings::JwtSettings;

/// The claims Diquis puts into (and requires in) an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user name, e.g. `admin@email.com.root` (SignalR's user identifier).
    pub sub: String,
    /// Token id.
    pub jti: String,
    /// Email.
    pub email: String,
    /// The user's id (UUID).
    pub uid: String,
    /// The user's tenant.
    pub tenant: String,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// CSRF token of a cookie session (absent for API tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// The user's security stamp at issue.
    #[serde(default)]
    pub sst: String,
    /// The session (refresh-token family) the token belongs to.
    #[serde(default)]
    pub sid: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not valid before (absent in tokens of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// How far `iat` and `nbf` may lie in the future: the clock difference tolerated between the
/// node that issued a token and the one checking it.
pub const CLOCK_SKEW_SECS: i64 = 30;

/// Why a token was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token's lifetime is over.
    #[error("the token has expired")]
    Expired,
    /// Bad signature, issuer, audience or shape.
    #[error("the token is invalid: {0}")]
    Invalid(String),
    /// Well-formed, but its user, tenant or session is gone, disabled or signed out, or the
    /// user's security stamp changed since it was issued.
    #[error("the token has been revoked")]
    Revoked,
    /// Issued by a version without revocation (no security stamp or session): its holder signs
    /// in again, or a browser's refresh cookie renews it.
    #[error("the token is from an earlier version")]
    Outdated,
    /// The revocation check could not reach the database: neither accepted nor refused.
    #[error("the token cannot be checked now")]
    Unavailable,
}

/// Issues and validates access tokens with one key.
#[derive(Clone)]
pub struct JwtService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    lifetime_secs: i64,
}

impl JwtService {
    /// A service with `key` (at least 32 bytes) and the issuer, audience and lifetime of `settings`.
    pub fn new(key: &[u8], settings: &JwtSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud", "iat"]);
        // Checked below with CLOCK_SKEW_SECS, together with `iat`.
        validation.validate_nbf = false;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            lifetime_secs: settings.expiry_minutes * 60,
        }
    }

    /// How long an access token lives, in seconds.
    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    /// Issues a token for `identity` that expires after the configured lifetime.
    pub fn issue(&self, identity: &Identity) -> String {
        self.issue_with_lifetime(identity, self.lifetime_secs)
    }

    /// Issues a token with an explicit lifetime (negative: already expired; for tests of refusal).
    pub fn issue_with_lifetime(&self, identity: &Identity, lifetime_secs: i64) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: identity.user_name.clone(),
            jti: uuid::Uuid::new_v4().to_string(),
            email: identity.email.clone(),
            uid: identity.user_id.clone(),
            tenant: identity.tenant.clone(),
            roles: identity.roles.clone(),
            csrf: identity.csrf.clone(),
            sst: identity.security_stamp.clone(),
            sid: identity.session_id.clone(),
            exp: now + lifetime_secs,
            iat: now,
            nbf: Some(now),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        // HS256 signing of a serializable struct cannot fail.
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }

    /// Validates signature, issuer, audience and expiry and returns the identity.
    pub fn validate(&self, token: &str) -> Result<Identity, TokenError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            other => TokenError::Invalid(format!("{other:?}")),
        })?;
        let c = data.claims;
        let now = Utc::now().timestamp();
        if c.iat > now + CLOCK_SKEW_SECS {
            return Err(TokenError::Invalid("issued in the future (iat)".into()));
        }
        if c.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECS) {
            return Err(TokenError::Invalid("not valid yet (nbf)".into()));
        }
        if c.sst.is_empty() || c.sid.is_empty() || c.uid.is_empty() || c.tenant.is_empty() {
            return Err(TokenError::Outdated);
        }
        Ok(Identity {
            user_id: c.uid,
            user_name: c.sub,
            email: c.email,
            tenant: c.tenant,
            roles: c.roles,
            csrf: c.csrf,
            security_stamp: c.sst,
            session_id: c.sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> JwtSettings {
        JwtSettings { key: None, issuer: "Diquis".into(), audience: "Diquis".into(), expiry_minutes: 60, refresh_days: 7 }
    }

    fn identity() -> Identity {
        Identity {
            user_id: "u1".into(),
            user_name: "a@b.c.root".into(),
            email: "a@b.c".into(),
            tenant: "root".into(),
            roles: vec!["root".into()],
            csrf: None,
            security_stamp: "s1".into(),
            session_id: "f1".into(),
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let s = JwtService::new(&[7u8; 32], &settings());
        let t = s.issue(&identity());
        assert_eq!(s.validate(&t).unwrap(), identity());
        assert_eq!(s.validate(&s.issue_with_lifetime(&identity(), -10)).unwrap_err(), TokenError::Expired);
        let other = JwtService::new(&[8u8; 32], &settings());
        assert!(matches!(other.validate(&t), Err(TokenError::Invalid(_))));
        assert!(matches!(s.validate("garbage"), Err(TokenError::Invalid(_))));
        let mut wrong_aud = settings();
        wrong_aud.audience = "Other".into();
        let w = JwtService::new(&[7u8; 32], &wrong_aud);
        assert!(matches!(s.validate(&w.issue(&identity())), Err(TokenError::Invalid(_))));
    }

    fn claims_at(iat: i64, nbf: Option<i64>) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            sub: "a@b.c.root".into(),
            jti: "j".into(),
            email: "a@b.c".into(),
            uid: "u1".into(),
            tenant: "root".into(),
            roles: vec![],
            csrf: None,
            sst: "s1".into(),
            sid: "f1".into(),
            exp: now + 600,
            iat,
            nbf,
            iss: "Diquis".into(),
            aud: "Diquis".into(),
        }
    }

    #[test]
    fn future_iat_and_nbf_are_refused_beyond_the_skew() {
        let s = JwtService::new(&[7u8; 32], &settings());
        let key = EncodingKey::from_secret(&[7u8; 32]);
        let sign = |c: &Claims| encode(&Header::new(Algorithm::HS256), c, &key).unwrap();
        let now = Utc::now().timestamp();
        assert!(s.validate(&sign(&claims_at(now, Some(now)))).is_ok());
        assert!(s.validate(&sign(&claims_at(now + 5, None))).is_ok(), "within the clock skew");
        assert!(matches!(s.validate(&sign(&claims_at(now + 3600, None))), Err(TokenError::Invalid(_))));
        assert!(matches!(s.validate(&sign(&claims_at(now, Some(now + 3600)))), Err(TokenError::Invalid(_))));
        let mut no_stamp = claims_at(now, None);
        no_stamp.sst.clear();
        assert_eq!(s.validate(&sign(&no_stamp)), Err(TokenError::Outdated));
    }
}
