//! Validation problems as a form shows them: the API words a problem with the JSON field's name
//! (`'adminEmail' is required.`); a form puts it next to the field, in the field's label
//! (`Admin email is required.`). Problems about no field of the form stay in the box above it.

use maud::{Markup, html};

/// A form field: the API's name and the label the form shows.
pub type FieldLabel = (&'static str, &'static str);

/// The fields of the tenant form that creates a tenant.
pub const CREATE_TENANT_FIELDS: &[FieldLabel] = &[
    ("id", "Id"),
    ("name", "Name"),
    ("adminEmail", "Admin email"),
    ("password", "Admin password"),
    ("hasIsolatedDatabase", "Isolated database"),
];

/// The fields of the tenant form that edits a tenant.
pub const EDIT_TENANT_FIELDS: &[FieldLabel] = &[("name", "Name"), ("isActive", "Active")];

/// Problems sorted out for a form.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FormErrors {
    /// `(field, message in words)`, in the order found.
    pub by_field: Vec<(&'static str, String)>,
    /// Problems of no field (a conflict, a server error), as they were.
    pub general: Vec<String>,
}

impl FormErrors {
    /// Sorts `problems` by the fields of `fields`.
    pub fn sort(problems: &[String], fields: &[FieldLabel]) -> Self {
        let mut out = FormErrors::default();
        'problems: for problem in problems {
            for (name, label) in fields {
                if let Some(rest) = problem.strip_prefix(&format!("'{name}'")) {
                    out.by_field.push((name, format!("{label}{rest}")));
                    continue 'problems;
                }
            }
            out.general.push(problem.clone());
        }
        out
    }

    /// The box above the form: the problems of no field.
    pub fn summary_html(&self) -> Markup {
        super::forms::problems_html(&self.general)
    }

    /// Whether `field` has a problem (its input then takes `aria-invalid` and
    /// `aria-describedby`, see [`FormErrors::described_by`]).
    pub fn invalid(&self, field: &str) -> bool {
        self.by_field.iter().any(|(f, _)| *f == field)
    }

    /// The value of `aria-describedby` for `field`'s input: the id of its messages, when it has
    /// a problem.
    pub fn described_by(&self, field: &str) -> Option<String> {
        self.invalid(field).then(|| format!("{field}-error"))
    }

    /// The messages under `field`; nothing when the field has no problem.
    pub fn field(&self, field: &str) -> Markup {
        let messages: Vec<&str> = self.by_field.iter().filter(|(f, _)| *f == field).map(|(_, m)| m.as_str()).collect();
        html! {
            @if !messages.is_empty() {
                p class="field-error" id={ (field) "-error" } { (messages.join(" ")) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_go_next_to_their_field_in_the_labels_words() {
        let problems = vec![
            "'name' is required.".to_string(),
            "'adminEmail' must be an email address; 'x' is not.".to_string(),
            "A tenant with id 'acme' already exists.".to_string(),
        ];
        let errors = FormErrors::sort(&problems, CREATE_TENANT_FIELDS);
        assert_eq!(
            errors.by_field,
            vec![
                ("name", "Name is required.".to_string()),
                ("adminEmail", "Admin email must be an email address; 'x' is not.".to_string())
            ]
        );
        assert_eq!(errors.general, vec!["A tenant with id 'acme' already exists.".to_string()]);
        assert_eq!(
            errors.field("adminEmail").into_string(),
            r#"<p class="field-error" id="adminEmail-error">Admin email must be an email address; 'x' is not.</p>"#
        );
        assert!(errors.invalid("adminEmail") && !errors.invalid("id"));
        assert_eq!(errors.described_by("adminEmail").as_deref(), Some("adminEmail-error"));
        assert_eq!((errors.field("id").into_string(), errors.described_by("id")), (String::new(), None));
        assert!(errors.summary_html().into_string().contains("already exists"));
        assert_eq!(FormErrors::sort(&problems[..1], CREATE_TENANT_FIELDS).summary_html().into_string(), "");
    }
}
