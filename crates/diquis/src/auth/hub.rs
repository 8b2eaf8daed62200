//! Who connects to `/hubs/notifications`: a Bearer token (header or `access_token` query, for
//! API clients and SPAs) or the browser's session cookie. Anonymous connections are refused with
//! 401, unlike the .NET original's `[AllowAnonymous]` hub.

use signalr_connections::{Authenticator, RequestInfo, Unauthorized, User};

use super::Identity;
use super::jwt::JwtService;
use super::session::AUTH_COOKIE;

/// The claim type carrying roles on hub users.
pub const ROLE_CLAIM: &str = "role";

/// The hub's authenticator.
pub struct HubAuthenticator {
    jwt: JwtService,
    allowed_origins: Vec<String>,
}

impl HubAuthenticator {
    /// Checks tokens with `jwt`; cookie-authenticated connections must come from the page's own
    /// origin or one of `allowed_origins` (no cross-site WebSocket hijacking).
    pub fn new(jwt: JwtService, allowed_origins: Vec<String>) -> Self {
        Self { jwt, allowed_origins }
    }

    fn origin_allowed(&self, request: &RequestInfo) -> bool {
        let Some(origin) = request.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            // Non-browser clients send no Origin; browsers always do on WebSocket and CORS requests.
            return true;
        };
        let host = request.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
        origin_host.eq_ignore_ascii_case(host) || self.allowed_origins.iter().any(|o| o.trim_end_matches('/') == origin)
    }
}

/// The hub user of an identity: identifier = user name, claims = sub, uid, email, tenant, roles.
pub fn hub_user(identity: &Identity) -> User {
    let mut claims = vec![
        ("sub".to_string(), identity.user_name.clone()),
        ("uid".to_string(), identity.user_id.clone()),
        ("email".to_string(), identity.email.clone()),
        ("tenant".to_string(), identity.tenant.clone()),
        // Read back by the revocation registry to close the connection when revoked.
        ("sst".to_string(), identity.security_stamp.clone()),
        ("sid".to_string(), identity.session_id.clone()),
    ];
    claims.extend(identity.roles.iter().map(|r| (ROLE_CLAIM.to_string(), r.clone())));
    User { identifier: Some(identity.user_name.clone()), claims }
}

/// Reads back whether a hub user is a root administrator.
pub fn user_is_root_admin(user: &User) -> bool {
    let has = |t: &str, v: &str| user.claims.iter().any(|(ct, cv)| ct == t && cv == v);
    has("tenant", super::ROOT_TENANT) && has(ROLE_CLAIM, super::ROOT_ROLE)
}

impl Authenticator for HubAuthenticator {
    fn authenticate(&self, request: &RequestInfo, bearer: Option<&str>) -> Result<Option<User>, Unauthorized> {
        if let Some(token) = bearer {
            return match self.jwt.validate(token) {
                Ok(identity) => Ok(Some(hub_user(&identity))),
                Err(e) => Err(Unauthorized(e.to_string())),
            };
        }
        let cookie = request.cookies.iter().find(|(k, _)| k == AUTH_COOKIE).map(|(_, v)| v.as_str());
        match cookie {
            Some(token) => {
                if !self.origin_allowed(request) {
                    return Err(Unauthorized("cookie authentication from a foreign origin".into()));
                }
                match self.jwt.validate(token) {
                    Ok(identity) => Ok(Some(hub_user(&identity))),
                    Err(e) => Err(Unauthorized(e.to_string())),
                }
            }
            None => Err(Unauthorized("no access token and no session cookie".into())),
        }
    }
}
