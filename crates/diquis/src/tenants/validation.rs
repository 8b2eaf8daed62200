//! Input checks for tenants; every problem is reported, not just the first.

/// Longest tenant id (PostgreSQL names are limited to 63 bytes, and an isolated tenant's
/// database is named `<main database>-<id>`).
pub const MAX_ID_LEN: usize = 40;
/// Longest tenant name.
pub const MAX_NAME_LEN: usize = 100;

/// Whether `id` matches `^[a-z0-9]+(?:-[a-z0-9]+)*$`.
pub fn is_slug(id: &str) -> bool {
    !id.is_empty() && id.split('-').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.len() <= 254
}

/// Reads an optional string field; a value of another type is a problem.
pub fn string_field<'a>(body: &'a serde_json::Value, field: &str, problems: &mut Vec<String>) -> Option<&'a str> {
    match body.get(field) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            problems.push(format!("'{field}' must be a string."));
            None
        }
    }
}

/// Reads an optional boolean field; a value of another type is a problem.
pub fn bool_field(body: &serde_json::Value, field: &str, problems: &mut Vec<String>) -> Option<bool> {
    match body.get(field) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => {
            problems.push(format!("'{field}' must be true or false."));
            None
        }
    }
}

/// Checks a tenant name.
pub fn check_name(name: Option<&str>, problems: &mut Vec<String>) {
    match name.map(str::trim) {
        None | Some("") => problems.push("'name' is required.".into()),
        Some(n) if n.chars().count() > MAX_NAME_LEN => problems.push(format!("'name' must be at most {MAX_NAME_LEN} characters.")),
        Some(n) if n.chars().any(char::is_control) => problems.push("'name' must not contain control characters.".into()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "abc", "a-b", "a1-b2-c3", "123"] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "a b", "é"] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(is_email("admin@email.com"));
        for bad in ["", "a", "a@", "@b.c", "a@b", "a@@b.c", "a b@c.d", "a@.c", "a@c."] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
