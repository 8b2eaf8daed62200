//! Authentication and authorization: Argon2 passwords ([`password`]), JWT access tokens
//! ([`jwt`]), refresh tokens and sign-in ([`tokens`]), users ([`users`]), the browser session
//! cookie with CSRF protection ([`session`]), request extractors ([`extract`]) and the hub's
//! [`signalr_connections::Authenticator`] ([`hub`]).

pub mod api;
pub mod extract;
pub mod hub;
pub mod jwt;
pub mod password;
pub mod password_reset;
pub mod revocation;
pub mod session;
pub mod signing_key;
pub mod tokens;
pub mod user_admin;
pub mod users;
pub mod users_api;

/// The role of Diquis's super users (members of the `root` tenant).
pub const ROOT_ROLE: &str = "root";
/// The tenant that runs the platform.
pub const ROOT_TENANT: &str = "root";
/// The role given to a new tenant's administrator.
pub const TENANT_OWNER_ROLE: &str = "academy_owner";

/// Who is calling, as read from a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's id (UUID).
    pub user_id: String,
    /// Tenant-qualified user name (`admin@email.com.root`); the hub's user identifier.
    pub user_name: String,
    /// Email.
    pub email: String,
    /// Tenant id.
    pub tenant: String,
    /// Roles.
    pub roles: Vec<String>,
    /// CSRF token bound to a browser session; `None` for API tokens.
    pub csrf: Option<String>,
    /// The user's security stamp when the token was issued (claim `sst`): a token whose stamp
    /// is no longer the user's is refused ([`revocation`]).
    pub security_stamp: String,
    /// The sign-in this token belongs to: its refresh-token family (claim `sid`). Signing out
    /// or reusing a rotated refresh token revokes the family and every token naming it.
    pub session_id: String,
}

impl Identity {
    /// Whether the caller is a platform administrator: role `root` in tenant `root`.
    pub fn is_root_admin(&self) -> bool {
        self.tenant == ROOT_TENANT && self.roles.iter().any(|r| r == ROOT_ROLE)
    }
}
