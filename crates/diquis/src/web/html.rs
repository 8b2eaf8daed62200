//! Small HTML helpers: escaping, URL encoding and the page layout.

use crate::auth::Identity;

/// Escapes text for HTML content and attribute values (one implementation with the jobs
/// dashboard's pages).
pub use jobs::dashboard::esc as escape;

/// Percent-encodes everything but unreserved characters.
pub use jobs::dashboard::urlencode as url_encode;

/// Whether `target` is a local path safe to redirect to after sign-in (no open redirect).
pub fn is_local_path(target: &str) -> bool {
    crate::security::redirect::is_local_url(target)
}

/// A full page. `head` goes into `<head>`, `scripts` at the end of `<body>`.
pub fn page(title: &str, user: Option<&Identity>, head: &str, body: &str, scripts: &str) -> String {
    page_on(title, user, head, body, scripts, true)
}

/// [`page`] on a node that serves the web pages (`web`) or not (a jobs node: its header has no
/// links to the tenant and user pages, which only web nodes serve).
pub fn page_on(title: &str, user: Option<&Identity>, head: &str, body: &str, scripts: &str, web: bool) -> String {
    let nav = match user {
        Some(u) => format!(
            r#"{tenants}{jobs}{users}<a href="/account/password">Password</a><span class="spacer"></span><span id="hub-status"></span>
<button type="button" id="theme-toggle" hidden>Theme</button>
<span class="muted">{email} ({tenant})</span>
<form method="post" action="/logout"><input type="hidden" name="_csrf" value="{csrf}"><button class="secondary" type="submit">Sign out</button></form>"#,
            tenants = if web { r#"<a href="/tenants">Tenants</a>"# } else { "" },
            jobs = if u.is_root_admin() { r#" <a href="/jobs">Jobs</a>"# } else { "" },
            users = if web && !u.is_root_admin() && crate::auth::users_api::is_tenant_admin(u) {
                r#" <a href="/users" id="users-link">Users</a> "#
            } else {
                " "
            },
            email = escape(&u.email),
            tenant = escape(&u.tenant),
            csrf = escape(u.csrf.as_deref().unwrap_or("")),
        ),
        None => String::from(r#"<span class="spacer"></span><button type="button" id="theme-toggle" hidden>Theme</button>"#),
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Diquis</title>
<link rel="stylesheet" href="/lib/toastr/toastr.min.css">
<link rel="stylesheet" href="/css/diquis.css">
<script src="/js/theme.js"></script>
{head}
</head>
<body>
<header class="top"><a class="brand" href="/">Diquis</a>{nav}</header>
<main>
{body}
</main>
{scripts}
</body>
</html>
"#,
        title = escape(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_redirect_safety() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url_encode("/tenants?x=1 2"), "%2Ftenants%3Fx%3D1%202");
        assert!(is_local_path("/tenants"));
        for bad in ["//evil.com", "https://evil.com", "/\\evil", "tenants"] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }
}
