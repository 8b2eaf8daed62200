-- An isolated tenant's own database (PostgreSQL): the academy data lives here.
CREATE TABLE IF NOT EXISTS tenant_metadata (
    tenant_id TEXT PRIMARY KEY,
    provisioned_on TIMESTAMPTZ NOT NULL
);
