//! Redirects after sign-in go only to paths of this site, with the rules of ASP.NET Core's
//! `Url.IsLocalUrl`: `/` followed by anything but `/` or `\`, and no control character (a
//! browser drops tabs and newlines from a URL, so `/\t/evil.example` would become
//! `//evil.example`). Anything else redirects to `/`.

use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Whether `url` (as the browser would receive it) is a path on this site.
pub fn is_local_url(url: &str) -> bool {
    // Checked as given and once more percent-decoded, so that no reading of the value leaves
    // the site.
    local_by_asp_net_rules(url) && percent_decode(url).is_some_and(|decoded| local_by_asp_net_rules(&decoded))
}

fn local_by_asp_net_rules(url: &str) -> bool {
    let mut chars = url.chars();
    match (chars.next(), chars.next()) {
        (Some('/'), None) => true,
        (Some('/'), Some('/' | '\\')) => false,
        (Some('/'), Some(_)) => !url.chars().any(char::is_control),
        _ => false,
    }
}

/// Decodes `%XX` sequences; `None` when the result is not UTF-8 (then nothing is trusted).
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|decoded| decoded.into_owned())
}

/// The local target of a `returnUrl`, or `/`.
pub fn local_or_root(url: &str) -> &str {
    if is_local_url(url) { url } else { "/" }
}

/// A 303 redirect to `url` when it is local, else to `/`; never fails.
pub fn local_redirect(url: &str) -> Response {
    let location = HeaderValue::from_str(local_or_root(url)).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_asp_net_table() {
        let local = ["/", "/tenants", "/tenants?x=1#y", "/a/b\\c", "/caf\u{e9}"];
        let foreign = [
            "",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/x\u{7f}",
            "/x\u{85}",
            "http://evil.example",
            "https:/evil.example",
            "evil.example",
            " /tenants",
            "\\\\evil.example",
            "~/tenants",
            "/%2F/evil.example",
            "/%09/evil.example",
            "/%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%0A",
        ];
        for u in local {
            assert!(is_local_url(u), "{u:?} is local");
        }
        for u in foreign {
            assert!(!is_local_url(u), "{u:?} is not local");
        }
    }

    #[test]
    fn redirects_never_fail() {
        let r = local_redirect("/\n");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[LOCATION], "/");
        assert_eq!(local_redirect("/tenants").headers()[LOCATION], "/tenants");
    }
}
