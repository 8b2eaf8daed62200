-- One-time password reset tokens made by `diquis users reset-password`: only the SHA-256 of the
-- token is stored; a token is deleted when used. Times in milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS password_reset_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS password_reset_tokens_user ON password_reset_tokens (user_id);
