-- Revocation: a security stamp per user (changed by disabling, deleting, a password change or a
-- tenant's deactivation; every access token carries it) and refresh-token families (one per
-- sign-in; rotation keeps the family, a reused token or a sign-out revokes it whole).
ALTER TABLE users ADD COLUMN security_stamp TEXT NOT NULL DEFAULT '';
UPDATE users SET security_stamp = lower(hex(randomblob(16))) WHERE security_stamp = '';

-- Cascades, so that deleting a user row (an operator's script too) takes its sessions along.
CREATE TABLE IF NOT EXISTS refresh_families (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_on TEXT NOT NULL,
    revoked_on TEXT
);
CREATE INDEX IF NOT EXISTS refresh_families_user ON refresh_families (user_id);

ALTER TABLE refresh_tokens ADD COLUMN family_id TEXT REFERENCES refresh_families(id) ON DELETE CASCADE;
-- Tokens from before families: each becomes its own family.
INSERT OR IGNORE INTO refresh_families (id, user_id, created_on, revoked_on)
    SELECT token_hash, user_id, created_on, revoked_on FROM refresh_tokens WHERE family_id IS NULL;
UPDATE refresh_tokens SET family_id = token_hash WHERE family_id IS NULL;
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
