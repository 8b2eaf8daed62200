//! Response headers every answer carries (pages, the jobs dashboard, the API, assets): a
//! Content-Security-Policy that runs only the app's own script files (no inline script except
//! the seed document's, allowed by its hash), `X-Content-Type-Options: nosniff`, no framing and a
//! strict `Referrer-Policy`. A handler that sets one of them itself keeps its own value.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::pages::SEED_SCRIPT;

/// The CSP source of an inline `<script>` element's text (`'sha256-…'`), as browsers hash it:
/// the exact characters between the tags.
pub fn script_hash(element: &str) -> String {
    let start = element.find('>').map(|i| i + 1).unwrap_or(0);
    let end = element.rfind("</script>").unwrap_or(element.len());
    let digest = Sha256::digest(&element.as_bytes()[start..end]);
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// The policy: scripts and connections from this origin only (plus the seed page's inline script
/// by hash); inline styles stay allowed (the dashboard's stylesheet is inline; styles run no code).
pub fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        format!(
            "default-src 'self'; script-src 'self' {seed}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
            seed = script_hash(SEED_SCRIPT)
        )
    })
}

/// Middleware adding the headers to every response.
pub async fn add(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let policy = HeaderValue::from_static(content_security_policy());
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, policy),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")),
    ] {
        headers.entry(name).or_insert(value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_the_text_between_the_tags() {
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(script_hash("<script>alert(1)</script>"), "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='");
        let policy = content_security_policy();
        assert!(policy.contains("frame-ancestors 'none'"));
        let scripts = policy.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
        assert!(!scripts.contains("unsafe-inline"), "{scripts}");
    }
}
