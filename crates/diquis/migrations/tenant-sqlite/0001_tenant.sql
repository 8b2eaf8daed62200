-- An isolated tenant's own database (SQLite): the academy data lives here.
CREATE TABLE IF NOT EXISTS tenant_metadata (
    tenant_id TEXT PRIMARY KEY,
    provisioned_on TEXT NOT NULL
);
