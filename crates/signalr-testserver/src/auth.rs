//! JWT bearer authentication as the functional-test server configures it: HS256 tokens from
//! `/generateJwtToken` (issuer `SignalRTestServer`, audience `SignalRTests`, NameIdentifier
//! `testuser`, 5 s lifetime plus .NET's default 5 min clock skew).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use signalr_connections::{Authenticator, RequestInfo, Unauthorized, User};

use crate::test_hub::NAME_IDENTIFIER;

/// Issuer of the test tokens.
pub const ISSUER: &str = "SignalRTestServer";
/// Audience of the test tokens.
pub const AUDIENCE: &str = "SignalRTests";
/// .NET's default `ClockSkew`.
const CLOCK_SKEW_SECONDS: u64 = 300;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    nameid: String,
    iss: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
}

/// Issues and validates the test server's tokens with one random key per process.
#[derive(Clone)]
pub struct JwtAuthenticator {
    key: Vec<u8>,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator").finish_non_exhaustive()
    }
}

impl Default for JwtAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl JwtAuthenticator {
    /// A new authenticator with a random signing key.
    pub fn new() -> Self {
        let key: [u8; 32] = rand::random();
        Self { key: key.to_vec() }
    }

    /// A token for `testuser`, valid for 5 seconds (plus the clock skew).
    pub fn generate_token(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims =
            Claims { nameid: "testuser".to_owned(), iss: ISSUER.to_owned(), aud: AUDIENCE.to_owned(), exp: now + 5, nbf: now, iat: now };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&self.key))
    }

    /// Validates a token and returns its user.
    pub fn validate(&self, token: &str) -> Result<User, Unauthorized> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = CLOCK_SKEW_SECONDS;
        let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.key), &validation)
            .map_err(|e| Unauthorized(e.to_string()))?;
        let id = data.claims.nameid;
        Ok(User {
            identifier: Some(id.clone()),
            claims: vec![
                (NAME_IDENTIFIER.to_owned(), id.clone()),
                ("nameid".to_owned(), id),
                ("iss".to_owned(), data.claims.iss),
                ("aud".to_owned(), data.claims.aud),
            ],
        })
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, _request: &RequestInfo, bearer: Option<&str>) -> Result<Option<User>, Unauthorized> {
        match bearer {
            Some(token) => self.validate(token).map(Some),
            None => Ok(None),
        }
    }
}

/// Authentication without `[Authorize]`: a valid token identifies the user, a missing or
/// invalid one leaves the caller anonymous (never a 401), as ASP.NET's JWT middleware does for
/// hubs that do not require authorization.
#[derive(Debug, Clone)]
pub struct OptionalJwtAuthenticator(pub std::sync::Arc<JwtAuthenticator>);

impl Authenticator for OptionalJwtAuthenticator {
    fn authenticate(&self, _request: &RequestInfo, bearer: Option<&str>) -> Result<Option<User>, Unauthorized> {
        Ok(bearer.and_then(|token| self.0.validate(token).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_validate_and_foreign_ones_do_not() {
        let auth = JwtAuthenticator::new();
        let token = auth.generate_token().unwrap();
        let user = auth.validate(&token).unwrap();
        assert_eq!(user.identifier.as_deref(), Some("testuser"));
        let other = JwtAuthenticator::new();
        assert!(other.validate(&token).is_err());
        assert!(auth.validate("not-a-token").is_err());
    }
}
