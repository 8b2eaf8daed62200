//! The browser session: an HttpOnly, SameSite=Strict cookie holding the access token, a second
//! one holding a refresh token, a CSRF token bound to the session, and a middleware that renews
//! an expired access cookie from the refresh cookie.

use axum::extract::{Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::jwt::TokenError;
use super::tokens::{self, RefreshBy};
use crate::state::AppState;

/// The cookie holding the access token (JWT).
pub const AUTH_COOKIE: &str = "diquis_auth";
/// The cookie holding the refresh token.
pub const REFRESH_COOKIE: &str = "diquis_refresh";
/// The double-submit cookie protecting the login form itself.
pub const LOGIN_CSRF_COOKIE: &str = "diquis_login_csrf";
/// The header carrying the session's CSRF token on script requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field carrying the session's CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// The value of cookie `name` in `headers`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether the client used HTTPS (then cookies are `Secure`). `X-Forwarded-Proto` here is the
/// one [`crate::security::forwarded::resolve_client`] left: `https` only when a trusted proxy said so.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for an HttpOnly, SameSite=Strict cookie; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Compares two secrets in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle_eq::ct_eq;
    ct_eq(a.as_bytes(), b.as_bytes())
}

mod subtle_eq {
    /// Constant-time byte comparison (length is not secret).
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Renews an expired or missing access cookie from a valid refresh cookie, so browser pages,
/// API calls and hub connections keep working for the refresh token's lifetime. The renewed
/// token is put into the request for the handlers and into the response for the browser,
/// together with the rotated refresh cookie.
pub async fn renew_session(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let Some(refresh) = cookie(headers, REFRESH_COOKIE) else {
        return next.run(request).await;
    };
    let needs_renewal = match cookie(headers, AUTH_COOKIE) {
        None => true,
        // An access cookie of an earlier version (no stamp or session) is renewed like an
        // expired one, so browsers stay signed in across the upgrade.
        Some(token) => matches!(state.jwt.validate(&token), Err(TokenError::Expired | TokenError::Outdated)),
    };
    if !needs_renewal {
        return next.run(request).await;
    }
    let secure = is_https(headers);
    // The refresh cookie rotates like an API client's refresh token.
    let renewed = match super::api::use_refresh(&state, &refresh, RefreshBy::Browser).await {
        Ok(refreshed) => match tokens::identity_of(&state.db, &refreshed.user, &refreshed.session_id, refreshed.csrf).await {
            Ok(identity) => Some((state.jwt.issue(&identity), refreshed.successor)),
            Err(e) => {
                tracing::warn!(error = %e, "session renewal failed");
                None
            }
        },
        Err(_) => None,
    };
    match renewed {
        Some((token, successor)) => {
            replace_cookie(request.headers_mut(), AUTH_COOKIE, &token);
            let mut response = next.run(request).await;
            let h = response.headers_mut();
            h.append(SET_COOKIE, set_cookie(AUTH_COOKIE, &token, state.jwt.lifetime_secs(), secure));
            if let Some((refresh_token, _)) = successor {
                let refresh_age = state.settings.jwt.refresh_days * 86_400;
                h.append(SET_COOKIE, set_cookie(REFRESH_COOKIE, &refresh_token, refresh_age, secure));
            }
            response
        }
        None => {
            // A dead refresh cookie: drop both so the browser lands on the login page cleanly.
            let mut response = next.run(request).await;
            response.headers_mut().append(SET_COOKIE, set_cookie(REFRESH_COOKIE, "", 0, secure));
            response.headers_mut().append(SET_COOKIE, set_cookie(AUTH_COOKIE, "", 0, secure));
            response
        }
    }
}

fn replace_cookie(headers: &mut HeaderMap, name: &str, value: &str) {
    let others: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && kv.split_once('=').map(|(k, _)| k) != Some(name))
        .map(String::from)
        .collect();
    let mut all = others;
    all.push(format!("{name}={value}"));
    headers.remove(COOKIE);
    if let Ok(v) = HeaderValue::from_str(&all.join("; ")) {
        headers.insert(COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_and_replaced() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; diquis_auth=old; b=2"));
        assert_eq!(cookie(&h, "diquis_auth").as_deref(), Some("old"));
        replace_cookie(&mut h, "diquis_auth", "new");
        assert_eq!(cookie(&h, "diquis_auth").as_deref(), Some("new"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert!(set_cookie("x", "y", 10, true).to_str().unwrap().contains("HttpOnly; SameSite=Strict; Max-Age=10; Secure"));
        assert!(secrets_equal("abc", "abc") && !secrets_equal("abc", "abd") && !secrets_equal("a", "ab"));
    }
}
