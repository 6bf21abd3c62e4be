-- zenn-gateway schema, migration 5 (applied by `zenn-admin db migrate` after migration 4): the
-- customer portal. Passwords (yescrypt hashes), sessions (tokens stored as SHA-256), failed
-- sign-ins counted for the brute-force limit, invitation codes and password-reset links (both
-- stored as SHA-256).

ALTER TABLE users
  ADD COLUMN IF NOT EXISTS password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL;

-- A signed-in browser: the cookie carries the token, the table its SHA-256. A session ends when
-- unused for [portal] session_idle_days (seen_at), at expires_at whatever its use, at sign-out,
-- and when the password changes.
CREATE TABLE IF NOT EXISTS sessions (
  token_hash  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  user_id     BIGINT UNSIGNED NOT NULL,
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  seen_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at  DATETIME(3) NOT NULL,
  KEY ix_sessions_user (user_id),
  KEY ix_sessions_expires (expires_at),
  CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per failed sign-in, by account (e-mail as typed, compared case-insensitively) and by
-- client address; rows older than the window are deleted as new ones come.
CREATE TABLE IF NOT EXISTS login_failures (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email       VARCHAR(254) NOT NULL,
  addr        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  at          DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_login_failures_email (email, at),
  KEY ix_login_failures_addr (addr, at),
  KEY ix_login_failures_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Invitation codes ([portal] signup = invite): made by `zenn-admin invite create`, used once.
CREATE TABLE IF NOT EXISTS invites (
  code_hash   CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  note        VARCHAR(100) NOT NULL DEFAULT '',
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at  DATETIME(3) NOT NULL,
  used_by     BIGINT UNSIGNED NULL,
  used_at     DATETIME(3) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One-time password-reset links (`zenn-admin user reset-password`), valid for an hour.
CREATE TABLE IF NOT EXISTS password_resets (
  token_hash  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  user_id     BIGINT UNSIGNED NOT NULL,
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at  DATETIME(3) NOT NULL,
  used_at     DATETIME(3) NULL,
  KEY ix_password_resets_user (user_id),
  CONSTRAINT fk_password_resets_user FOREIGN KEY (user_id) REFERENCES users(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
