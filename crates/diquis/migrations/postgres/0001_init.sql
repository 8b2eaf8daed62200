-- Diquis main database (PostgreSQL).
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    is_active BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    provisioning_error TEXT,
    connection_string TEXT,
    has_isolated_database BOOLEAN NOT NULL,
    admin_email TEXT NOT NULL,
    created_by TEXT,
    created_on TIMESTAMPTZ NOT NULL,
    updated_on TIMESTAMPTZ NOT NULL,
    last_provisioning_attempt TIMESTAMPTZ,
    provisioned_on TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS roles (
    name TEXT PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL,
    user_name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    is_active BOOLEAN NOT NULL,
    created_on TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL REFERENCES roles(name),
    PRIMARY KEY (user_id, role)
);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf TEXT,
    created_on TIMESTAMPTZ NOT NULL,
    expires_on TIMESTAMPTZ NOT NULL,
    revoked_on TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS notifications (
    id BIGSERIAL PRIMARY KEY,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    tenant_id TEXT,
    recipient_user TEXT,
    created_on TIMESTAMPTZ NOT NULL,
    sent_on TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS notifications_unsent ON notifications (id) WHERE sent_on IS NULL;

CREATE TABLE IF NOT EXISTS app_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tenant_metadata (
    tenant_id TEXT PRIMARY KEY,
    provisioned_on TIMESTAMPTZ NOT NULL
);

INSERT INTO roles (name) VALUES ('root'), ('academy_owner'), ('academy_admin'), ('director_of_football'),
    ('coach'), ('parent'), ('player') ON CONFLICT DO NOTHING;
