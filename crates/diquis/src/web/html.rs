//! Small HTML helpers: URL encoding and the page layout. Pages are maud templates, which escape
//! every value unless it is markup another template rendered (docs/decisions/0016-html-templates.md).

use maud::{DOCTYPE, Render, html};

use crate::auth::Identity;

/// Percent-encodes everything but unreserved characters (the `percent-encoding` crate, one
/// encoding with the jobs dashboard's links).
pub use jobs::dashboard::urlencode as url_encode;

/// Whether `target` is a local path safe to redirect to after sign-in (no open redirect).
pub fn is_local_path(target: &str) -> bool {
    crate::security::redirect::is_local_url(target)
}

/// A full page. `head` goes into `<head>`, `scripts` at the end of `<body>`: markup from a
/// template (a plain string would be escaped, so it shows as text rather than running).
pub fn page(title: &str, user: Option<&Identity>, head: impl Render, body: impl Render, scripts: impl Render) -> String {
    page_on(title, user, head, body, scripts, true)
}

/// [`page`] on a node that serves the web pages (`web`) or not (a jobs node: its header has no
/// links to the tenant and user pages, which only web nodes serve).
pub fn page_on(title: &str, user: Option<&Identity>, head: impl Render, body: impl Render, scripts: impl Render, web: bool) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Diquis" }
                link rel="stylesheet" href="/lib/toastr/toastr.min.css";
                link rel="stylesheet" href="/css/diquis.css";
                script src="/js/theme.js" {}
                (head)
            }
            body {
                header class="top" {
                    a class="brand" href="/" { "Diquis" }
                    @if let Some(u) = user {
                        @if web { a href="/tenants" { "Tenants" } }
                        @if u.is_root_admin() { " " a href="/jobs" { "Jobs" } }
                        " "
                        @if web && !u.is_root_admin() && crate::auth::users_api::is_tenant_admin(u) {
                            a href="/users" id="users-link" { "Users" } " "
                        }
                        a href="/account/password" { "Password" }
                        span class="spacer" {}
                        span id="hub-status" {}
                        "\n"
                        button type="button" id="theme-toggle" hidden { "Theme" }
                        "\n"
                        span class="muted" { (u.email) " (" (u.tenant) ")" }
                        "\n"
                        form method="post" action="/logout" {
                            input type="hidden" name="_csrf" value=(u.csrf.as_deref().unwrap_or(""));
                            button class="secondary" type="submit" { "Sign out" }
                        }
                    } @else {
                        span class="spacer" {}
                        button type="button" id="theme-toggle" hidden { "Theme" }
                    }
                }
                "\n"
                main { "\n" (body) "\n" }
                "\n"
                (scripts)
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use maud::PreEscaped;

    use super::*;

    #[test]
    fn values_are_escaped_and_redirects_local() {
        let html = page(r#"<a href="x">'&'</a>"#, None, "<script>", PreEscaped("<p id=\"body\">trusted</p>"), "");
        assert!(html.contains("<title>&lt;a href=&quot;x&quot;&gt;'&amp;'&lt;/a&gt; · Diquis</title>"), "{html}");
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "a plain string is text: {html}");
        assert!(html.contains("<p id=\"body\">trusted</p>"), "{html}");
        assert_eq!(url_encode("/tenants?x=1 2"), "%2Ftenants%3Fx%3D1%202");
        assert!(is_local_path("/tenants"));
        for bad in ["//evil.com", "https://evil.com", "/\\evil", "tenants"] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }
}
