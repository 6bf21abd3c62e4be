-- zenn-gateway schema, version 8: the whole current schema, applied to a new database by
-- `zenn-admin db migrate` (which splits on DELIMITER lines like the mariadb client does), or by
-- hand: mariadb zenn < sql/schema.sql. A database made by an older version is brought here by the
-- migrations (sql/migrate-N-*.sql, deltas); tests/integration/test_schema.py checks that both roads
-- end at the same schema.
-- Money is integers: 1 credit = 1 micro-dollar of list price. Prices are micro-dollars per million tokens.

CREATE TABLE IF NOT EXISTS schema_version (
  version     INT NOT NULL PRIMARY KEY,
  applied_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS users (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email       VARCHAR(254) NOT NULL,
  -- credits: sum of the lots' remaining credits, minus any overdraft not yet repaid (may be negative)
  balance     BIGINT NOT NULL DEFAULT 0,
  -- credits reserved by requests in flight
  held        BIGINT NOT NULL DEFAULT 0,
  status      ENUM('active','disabled') NOT NULL DEFAULT 'active',
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  -- yescrypt (crypt(3)) of the SHA-256 of the password; NULL = no portal sign-in
  password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  UNIQUE KEY uq_users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per top-up: a lot of credits bought at one plan's multiplier.
CREATE TABLE IF NOT EXISTS topups (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id            BIGINT UNSIGNED NOT NULL,
  plan               ENUM('pro','max','enterprise') NOT NULL,
  usd_micros         BIGINT NOT NULL,
  multiplier         INT NOT NULL,
  credits_granted    BIGINT NOT NULL,
  credits_remaining  BIGINT NOT NULL,
  created_at         DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  -- the payment's reference (idempotency): the same reference grants once
  ref                VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  KEY ix_topups_user (user_id, credits_remaining),
  UNIQUE KEY uq_topups_ref (ref),
  CONSTRAINT fk_topups_user FOREIGN KEY (user_id) REFERENCES users(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS api_keys (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id       BIGINT UNSIGNED NOT NULL,
  key_hash      CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,   -- SHA-256 of the whole key, hex
  prefix        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, -- display prefix, e.g. ck_AbCdEfGhJ
  name          VARCHAR(100) NOT NULL DEFAULT '',
  status        ENUM('active','revoked') NOT NULL DEFAULT 'active',
  spend_limit   BIGINT NULL,                            -- credits; NULL = no limit
  spent         BIGINT NOT NULL DEFAULT 0,
  held          BIGINT NOT NULL DEFAULT 0,
  created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  last_used_at  DATETIME(3) NULL,
  revoked_at    DATETIME(3) NULL,
  kind          ENUM('api','browser') NOT NULL DEFAULT 'api',  -- browser: minted for /chat, never listed
  expires_at    DATETIME(3) NULL,                       -- NULL = never; past = answered like a revoked key
  session_hash  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,  -- a browser key's session (revoked with it)
  UNIQUE KEY uq_keys_hash (key_hash),
  UNIQUE KEY uq_keys_prefix (prefix),
  KEY ix_keys_user (user_id),
  KEY ix_keys_expires (expires_at),
  KEY ix_keys_session (session_hash),
  CONSTRAINT fk_keys_user FOREIGN KEY (user_id) REFERENCES users(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS models (
  id                     VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
  display_name           VARCHAR(128) NOT NULL,
  provider               VARCHAR(32) CHARACTER SET ascii NOT NULL,
  kind                   ENUM('chat','image','video','audio') NOT NULL DEFAULT 'chat',
  status                 ENUM('live','coming_soon') NOT NULL,
  min_plan               ENUM('pro','max','enterprise') NOT NULL DEFAULT 'pro',
  price_input            BIGINT NULL,  -- micro-dollars per million tokens
  price_output           BIGINT NULL,
  price_cache_read       BIGINT NULL,
  price_cache_write_5m   BIGINT NULL,
  price_cache_write_1h   BIGINT NULL,
  price_unit             BIGINT NULL,  -- credits per image (or per generation)
  created_unix           BIGINT NOT NULL DEFAULT 0,
  sort_order             INT NOT NULL DEFAULT 0,
  -- the context window; the input a hold assumes when the provider expands input itself (files and
  -- images by URL or id, stored conversations; NULL = the context window); the long-context tier:
  -- input of all kinds above long_threshold prices the whole request at long_* (NULL = no tier)
  context_window         BIGINT NULL,
  expand_input           BIGINT NULL,
  long_threshold         BIGINT NULL,
  long_input             BIGINT NULL,
  long_output            BIGINT NULL,
  long_cache_read        BIGINT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS model_aliases (
  alias     VARCHAR(128) CHARACTER SET ascii NOT NULL PRIMARY KEY,
  model_id  VARCHAR(64) CHARACTER SET ascii NOT NULL,
  CONSTRAINT fk_alias_model FOREIGN KEY (model_id) REFERENCES models(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Bumped by triggers on every catalog change; workers reload their in-memory catalog when it moves.
CREATE TABLE IF NOT EXISTS catalog_version (
  id       TINYINT NOT NULL PRIMARY KEY,
  version  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT IGNORE INTO catalog_version VALUES (1, 1);
-- Row 2 is the access version: bumped by triggers when a key or user changes status or a key's spend
-- limit changes, so processes holding leases re-check at once.
INSERT IGNORE INTO catalog_version VALUES (2, 1);
-- Row 3 is the channel version: bumped by triggers when a channel changes, so processes reload
-- their channel table within a second.
INSERT IGNORE INTO catalog_version VALUES (3, 1);

-- Channels: upstream accounts. Each provider's [provider.NAME] section in zenn.conf is its default
-- channel (named after the provider, never stored here); these are the others. api_key is the
-- provider's secret: only the programs and zenn-admin read it, and zenn-admin shows it masked.
CREATE TABLE IF NOT EXISTS channels (
  id                  INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name                VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  provider            VARCHAR(16) CHARACTER SET ascii NOT NULL,
  base_url            VARCHAR(512) NOT NULL,          -- the native API root
  anthropic_base_url  VARCHAR(512) NOT NULL DEFAULT '',  -- Anthropic-compatible root (DeepSeek, Moonshot, Zhipu)
  openai_base_url     VARCHAR(512) NOT NULL DEFAULT '',  -- OpenAI-compatible root (Gemini)
  api_key             VARCHAR(512) NOT NULL,
  priority            INT NOT NULL DEFAULT 0,          -- higher tiers are tried first
  weight              INT UNSIGNED NOT NULL DEFAULT 1, -- share within a tier
  max_concurrency     INT UNSIGNED NOT NULL DEFAULT 0, -- requests at once per program process; 0 = any
  models              VARCHAR(2048) CHARACTER SET ascii NOT NULL DEFAULT '',  -- comma list; '' = all
  plans               VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '',    -- comma list; '' = all
  enabled             TINYINT NOT NULL DEFAULT 1,
  disabled_reason     VARCHAR(255) NULL,
  created_at          DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at          DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uq_channels_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Open circuits shared between processes and nodes: (channel, model) is skipped until open_until.
CREATE TABLE IF NOT EXISTS channel_health (
  channel     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  model       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  open_until  DATETIME(3) NOT NULL,
  reason      VARCHAR(255) NOT NULL DEFAULT '',
  PRIMARY KEY (channel, model)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Per user, per group, per hour window (window_start = unix seconds at the hour).
-- (Procedure parameters compared with ascii columns are declared ascii too: a utf8mb4 parameter
-- would make MariaDB convert the column side and scan the table instead of using the index.)
CREATE TABLE IF NOT EXISTS rate_counters (
  user_id       BIGINT UNSIGNED NOT NULL,
  grp           VARCHAR(16) CHARACTER SET ascii NOT NULL,
  window_start  INT UNSIGNED NOT NULL,
  hits          INT UNSIGNED NOT NULL,
  PRIMARY KEY (user_id, grp, window_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per metered request. Written `pending` with the hold before the upstream call, settled after.
CREATE TABLE IF NOT EXISTS usage_log (
  id                      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  request_id              VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id                 BIGINT UNSIGNED NOT NULL,
  key_id                  BIGINT UNSIGNED NOT NULL,
  surface                 VARCHAR(16) CHARACTER SET ascii NOT NULL,
  model                   VARCHAR(64) CHARACTER SET ascii NOT NULL,
  provider                VARCHAR(32) CHARACTER SET ascii NOT NULL,
  status                  ENUM('pending','settled','abandoned') NOT NULL DEFAULT 'pending',
  end_reason              VARCHAR(24) CHARACTER SET ascii NULL,
  hold_credits            BIGINT NOT NULL,
  credits                 BIGINT NULL,
  cash_micros             BIGINT NULL,   -- money consumed: credits / each lot's multiplier
  input_tokens            BIGINT NOT NULL DEFAULT 0,
  output_tokens           BIGINT NOT NULL DEFAULT 0,
  cache_read_tokens       BIGINT NOT NULL DEFAULT 0,
  cache_write_5m_tokens   BIGINT NOT NULL DEFAULT 0,
  cache_write_1h_tokens   BIGINT NOT NULL DEFAULT 0,
  reasoning_tokens        BIGINT NOT NULL DEFAULT 0,
  units                   INT NOT NULL DEFAULT 0,   -- images returned
  estimated               TINYINT NOT NULL DEFAULT 0,
  upstream_status         SMALLINT NULL,
  ttfb_ms                 INT NULL,
  duration_ms             INT NULL,
  channel                 VARCHAR(64) CHARACTER SET ascii NULL,  -- the channel that answered
  attempts                TINYINT UNSIGNED NOT NULL DEFAULT 1,   -- upstream attempts (failover)
  created_at              DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  settled_at              DATETIME(3) NULL,
  UNIQUE KEY uq_usage_request (request_id),
  KEY ix_usage_user (user_id, created_at),
  KEY ix_usage_pending (status, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- zenn-gateway schema, migration 2: billing mode "lease" (applied by `zenn-admin db migrate` after
-- schema.sql). Leases, the access version, batched settlement, and zg_settle rewritten over the
-- shared lot walk zg_consume_lots.
-- Credit and rate-limit leases (billing mode "lease"): a gateway process reserves a slice of a key's
-- credits (counted in users.held and api_keys.held like any hold) and of its hourly request count,
-- and admits requests against the slice in memory. One row per process (owner), key and group.
CREATE TABLE IF NOT EXISTS leases (
  owner         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- host:pid:start
  key_id        BIGINT UNSIGNED NOT NULL,
  grp           VARCHAR(16) CHARACTER SET ascii NOT NULL,
  user_id       BIGINT UNSIGNED NOT NULL,
  credits       BIGINT NOT NULL,          -- reserved and not yet consumed by settled requests
  renewed_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  slots         INT NOT NULL DEFAULT 0,   -- requests of the hour window slots_window taken, not given back
  slots_window  INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (owner, key_id, grp),
  KEY ix_leases_renewed (renewed_at),
  KEY ix_leases_user (user_id, grp)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A request found the hour's count used up while other processes still held unused slices: every
-- process polls this table and gives back the unused slices of (user_id, grp) at once; the refused
-- request asks again before it answers 429. Rows older than an hour are deleted as new ones come.
-- The per-user cap on requests in flight ([limits] concurrent_per_user): slots of a user's
-- allowance held by each program process (renewed while held), and the row locked to change them.
CREATE TABLE IF NOT EXISTS conc_users (
  user_id     BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  changes     BIGINT UNSIGNED NOT NULL DEFAULT 0   -- written by every change: the per-user lock
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS conc_slots (
  user_id     BIGINT UNSIGNED NOT NULL,
  owner       VARCHAR(160) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- host:pid:start
  slots       INT NOT NULL,
  renewed_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (user_id, owner),
  KEY (owner)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS rate_recalls (
  seq         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id     BIGINT UNSIGNED NOT NULL,
  grp         VARCHAR(16) CHARACTER SET ascii NOT NULL,
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_recalls_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Lease operations (zg_lease grants, zg_lease_drop returns) already applied, by the caller's operation
-- id: a call repeated after its answer was lost (the connection broke after the commit) finds its
-- record and answers what it did the first time instead of doing it again. Kept a day.
CREATE TABLE IF NOT EXISTS lease_ops (
  op_id       VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  user_id     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  key_id      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  plan_rank   INT NOT NULL DEFAULT 0,
  rl_limit    INT NOT NULL DEFAULT 0,
  rl_used     BIGINT NOT NULL DEFAULT 0,
  rl_reset    BIGINT NOT NULL DEFAULT 0,
  credits     BIGINT NOT NULL DEFAULT 0,
  slots       INT NOT NULL DEFAULT 0,
  version     BIGINT NOT NULL DEFAULT 0,
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_lease_ops_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A signed-in browser: the cookie carries the token, the table its SHA-256. A session ends when
-- unused for [portal] session_idle_days (seen_at), at expires_at whatever its use, at sign-out,
-- and when the password changes.
-- Image generations run in the background ("background": true): admitted like any request (its
-- pending usage row holds the credits, request_id), carried to the end by whichever images process
-- claims the job (owner, renewed every few seconds while it runs; a job whose owner stopped renewing
-- is claimed again), settled once, and kept until expires_at.
CREATE TABLE IF NOT EXISTS image_jobs (
  id            CHAR(28) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,  -- img_ + 24 hex
  request_id    VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id       BIGINT UNSIGNED NOT NULL,
  key_id        BIGINT UNSIGNED NOT NULL,
  plan_rank     TINYINT NOT NULL DEFAULT 1,              -- the user's plan at admission (channel routing)
  model         VARCHAR(64) CHARACTER SET ascii NOT NULL,
  status        ENUM('queued','in_progress','completed','failed') NOT NULL DEFAULT 'queued',
  body          MEDIUMTEXT NOT NULL,                     -- the upstream request body
  result        LONGTEXT NULL,                           -- the upstream answer (completed)
  error         VARCHAR(512) NULL,                       -- why it failed (failed)
  credits       BIGINT NULL,                             -- what it was billed (completed: per image)
  owner         VARCHAR(160) CHARACTER SET ascii COLLATE ascii_bin NULL,
  renewed_at    DATETIME(3) NULL,
  tries         INT NOT NULL DEFAULT 0,
  created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  started_at    DATETIME(3) NULL,
  finished_at   DATETIME(3) NULL,
  expires_at    DATETIME(3) NOT NULL,
  UNIQUE KEY uq_image_jobs_request (request_id),
  KEY ix_image_jobs_status (status, created_at),
  KEY ix_image_jobs_owner (owner),
  KEY ix_image_jobs_user (user_id),
  KEY ix_image_jobs_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

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

-- Usage rollup: one row per user × UTC day × key × model × surface, kept up to date by the
-- settlement transactions themselves (zg_rollup). A request counts in the UTC day it started
-- (usage_log.created_at). errors: end reasons other than complete and client_closed; ttfb_n and
-- duration_n: how many requests the sums cover (averages). Kept when raw rows are purged.
CREATE TABLE IF NOT EXISTS usage_daily (
  user_id                 BIGINT UNSIGNED NOT NULL,
  day                     DATE NOT NULL,
  key_id                  BIGINT UNSIGNED NOT NULL,
  model                   VARCHAR(64) CHARACTER SET ascii NOT NULL,
  surface                 VARCHAR(16) CHARACTER SET ascii NOT NULL,
  requests                BIGINT NOT NULL DEFAULT 0,
  errors                  BIGINT NOT NULL DEFAULT 0,
  estimated               BIGINT NOT NULL DEFAULT 0,
  input_tokens            BIGINT NOT NULL DEFAULT 0,
  output_tokens           BIGINT NOT NULL DEFAULT 0,
  cache_read_tokens       BIGINT NOT NULL DEFAULT 0,
  cache_write_5m_tokens   BIGINT NOT NULL DEFAULT 0,
  cache_write_1h_tokens   BIGINT NOT NULL DEFAULT 0,
  reasoning_tokens        BIGINT NOT NULL DEFAULT 0,
  units                   BIGINT NOT NULL DEFAULT 0,
  credits                 BIGINT NOT NULL DEFAULT 0,
  cash_micros             BIGINT NOT NULL DEFAULT 0,
  ttfb_ms_sum             BIGINT NOT NULL DEFAULT 0,
  ttfb_n                  BIGINT NOT NULL DEFAULT 0,
  duration_ms_sum         BIGINT NOT NULL DEFAULT 0,
  duration_n              BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, day, key_id, model, surface),
  KEY ix_usage_daily_day (day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- What the lot walk took from each lot, per UTC day of the requests it paid for: credits and their
-- cash value (each piece's credits ÷ the lot's multiplier, rounded, as in usage_log.cash_micros),
-- so a day's cash in usage_daily is the sum of its lot pieces. Written by zg_lot_put.
CREATE TABLE IF NOT EXISTS lot_daily (
  user_id      BIGINT UNSIGNED NOT NULL,
  day          DATE NOT NULL,
  topup_id     BIGINT UNSIGNED NOT NULL,
  credits      BIGINT NOT NULL DEFAULT 0,
  cash_micros  BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, day, topup_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- What the rollups can be checked against: raw usage rows are complete from raw_from on (older ones
-- were purged under [usage] keep_days), and lot pieces are recorded from lots_from on.
CREATE TABLE IF NOT EXISTS usage_state (
  id         TINYINT NOT NULL PRIMARY KEY,
  raw_from   DATE NOT NULL,
  lots_from  DATE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT IGNORE INTO usage_state VALUES (1, '1000-01-01', '1000-01-01');

-- Receipts: one per granted top-up (card or manual), numbered PREFIX-YYYY-NNNNNN without gaps
-- within a UTC year ([invoice] prefix when issued). receipt_seq holds each year's last number; the
-- grant takes the next one in its own transaction, so a rolled-back grant leaves no gap.
CREATE TABLE IF NOT EXISTS receipt_seq (
  year        SMALLINT UNSIGNED NOT NULL PRIMARY KEY,
  last        INT UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS receipts (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  number        VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  year          SMALLINT UNSIGNED NOT NULL,
  seq           INT UNSIGNED NOT NULL,
  topup_id      BIGINT UNSIGNED NOT NULL,
  user_id       BIGINT UNSIGNED NOT NULL,
  issued_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  plan          ENUM('pro','max','enterprise') NOT NULL,
  multiplier    INT NOT NULL,
  usd_micros    BIGINT NOT NULL,
  credits       BIGINT NOT NULL,
  currency      CHAR(3) CHARACTER SET ascii NOT NULL DEFAULT 'usd',
  -- card: paid through the payment processor; manual: granted by zenn-admin topup (bank transfer)
  method        ENUM('card','manual') NOT NULL,
  -- the payment's reference: the processor's payment id, or the top-up's --ref
  payment_ref   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  UNIQUE KEY uq_receipts_number (number),
  UNIQUE KEY uq_receipts_seq (year, seq),
  UNIQUE KEY uq_receipts_topup (topup_id),
  KEY ix_receipts_user (user_id, id),
  CONSTRAINT fk_receipts_topup FOREIGN KEY (topup_id) REFERENCES topups(id),
  CONSTRAINT fk_receipts_user FOREIGN KEY (user_id) REFERENCES users(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Card top-ups: a checkout is recorded (creating) before the processor's session exists, bound to
-- the session when it is made (open), and granted once (paid) by the signed event that says it was
-- paid; its plan, amount and credits are the gateway's own, never the event's. ref: the public
-- reference (the processor's Idempotency-Key and client_reference_id); url: the processor's payment
-- page for it. client_key: the caller's
-- Idempotency-Key, so a repeated request answers the same checkout. mismatch: paid, but not the
-- amount or currency asked (nothing granted; the operator settles it).
CREATE TABLE IF NOT EXISTS checkouts (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ref             CHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id         BIGINT UNSIGNED NOT NULL,
  plan            ENUM('pro','max','enterprise') NOT NULL,
  usd_micros      BIGINT NOT NULL,
  multiplier      INT NOT NULL,
  credits         BIGINT NOT NULL,
  currency        CHAR(3) CHARACTER SET ascii NOT NULL,
  status          ENUM('creating','open','processing','paid','failed','expired','mismatch','refunded')
                  NOT NULL DEFAULT 'creating',
  session_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_intent  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  client_key      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  url             VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NULL,
  topup_id        BIGINT UNSIGNED NULL,
  refunded_cents  BIGINT NOT NULL DEFAULT 0,
  note            VARCHAR(255) NULL,
  created_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY uq_checkouts_ref (ref),
  UNIQUE KEY uq_checkouts_session (session_id),
  UNIQUE KEY uq_checkouts_client (user_id, client_key),
  UNIQUE KEY uq_checkouts_topup (topup_id),
  KEY ix_checkouts_intent (payment_intent),
  KEY ix_checkouts_user (user_id, id),
  CONSTRAINT fk_checkouts_user FOREIGN KEY (user_id) REFERENCES users(id),
  CONSTRAINT fk_checkouts_topup FOREIGN KEY (topup_id) REFERENCES topups(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Every processor event applied, once: its id is the key, inserted in the transaction that acts
-- on it, so a second delivery (or twenty at once) finds it and does nothing.
CREATE TABLE IF NOT EXISTS stripe_events (
  event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  type          VARCHAR(64) CHARACTER SET ascii NOT NULL,
  checkout_id   BIGINT UNSIGNED NULL,
  outcome       VARCHAR(32) CHARACTER SET ascii NOT NULL DEFAULT '',
  received_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_stripe_events_checkout (checkout_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Refunds of card top-ups: what the refund took back from its lot (the unspent credits in
-- proportion to the money returned, at most what was left; spent credits stay spent).
CREATE TABLE IF NOT EXISTS refunds (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id         BIGINT UNSIGNED NOT NULL,
  topup_id        BIGINT UNSIGNED NOT NULL,
  checkout_id     BIGINT UNSIGNED NOT NULL,
  event_id        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount_cents    BIGINT NOT NULL,
  credits_revoked BIGINT NOT NULL,
  created_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY uq_refunds_event (event_id),
  KEY ix_refunds_user (user_id, created_at),
  KEY ix_refunds_topup (topup_id),
  CONSTRAINT fk_refunds_user FOREIGN KEY (user_id) REFERENCES users(id),
  CONSTRAINT fk_refunds_topup FOREIGN KEY (topup_id) REFERENCES topups(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

DELIMITER //

CREATE OR REPLACE TRIGGER trg_channels_ins AFTER INSERT ON channels FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 3 //
CREATE OR REPLACE TRIGGER trg_channels_upd AFTER UPDATE ON channels FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 3 //
CREATE OR REPLACE TRIGGER trg_channels_del AFTER DELETE ON channels FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 3 //
CREATE OR REPLACE TRIGGER trg_models_ins AFTER INSERT ON models FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 1 //
CREATE OR REPLACE TRIGGER trg_models_upd AFTER UPDATE ON models FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 1 //
CREATE OR REPLACE TRIGGER trg_models_del AFTER DELETE ON models FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 1 //
CREATE OR REPLACE TRIGGER trg_alias_ins AFTER INSERT ON model_aliases FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 1 //
CREATE OR REPLACE TRIGGER trg_alias_upd AFTER UPDATE ON model_aliases FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 1 //
CREATE OR REPLACE TRIGGER trg_alias_del AFTER DELETE ON model_aliases FOR EACH ROW
  UPDATE catalog_version SET version = version + 1 WHERE id = 1 //
CREATE OR REPLACE TRIGGER trg_keys_upd AFTER UPDATE ON api_keys FOR EACH ROW
  IF NEW.status <> OLD.status OR NOT (NEW.spend_limit <=> OLD.spend_limit) THEN
    UPDATE catalog_version SET version = version + 1 WHERE id = 2;
  END IF //
CREATE OR REPLACE TRIGGER trg_users_upd AFTER UPDATE ON users FOR EACH ROW
  IF NEW.status <> OLD.status THEN
    UPDATE catalog_version SET version = version + 1 WHERE id = 2;
  END IF //

-- The key lookup, the one place that says which keys work: the id of the active, unexpired key with
-- this hash whose user is active; NULL for any other.
CREATE OR REPLACE FUNCTION zg_key_find(p_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin) RETURNS BIGINT UNSIGNED
  READS SQL DATA
BEGIN
  DECLARE v BIGINT UNSIGNED DEFAULT NULL;
  SELECT k.id INTO v FROM api_keys k JOIN users u ON u.id = k.user_id
   WHERE k.key_hash = p_hash AND k.status = 'active' AND u.status = 'active'
     AND (k.expires_at IS NULL OR k.expires_at > NOW(3));
  RETURN v;
END //

-- A session that ends (sign-out, a password change, expiry) takes its browser keys with it.
CREATE OR REPLACE TRIGGER trg_sessions_del AFTER DELETE ON sessions FOR EACH ROW
  UPDATE api_keys SET status = 'revoked', revoked_at = NOW(3)
   WHERE session_hash = OLD.token_hash AND status = 'active' //

-- Plan rank of a user: the highest plan among lots with credits left (1 pro, 2 max, 3 enterprise; 0 none).
CREATE OR REPLACE FUNCTION zg_plan_rank(p_user BIGINT UNSIGNED) RETURNS INT
  READS SQL DATA
BEGIN
  DECLARE r INT;
  SELECT COALESCE(MAX(CASE plan WHEN 'pro' THEN 1 WHEN 'max' THEN 2 ELSE 3 END), 0) INTO r
    FROM topups WHERE user_id = p_user AND credits_remaining > 0;
  RETURN r;
END //

-- Authenticate a key hash. One row: code (0 ok, 401), user_id, key_id, plan_rank.
CREATE OR REPLACE PROCEDURE zg_auth(IN p_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin)
BEGIN
  DECLARE v_user BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_key BIGINT UNSIGNED DEFAULT NULL;
  SET v_key = zg_key_find(p_hash);
  SELECT user_id INTO v_user FROM api_keys WHERE id = v_key;
  IF v_key IS NULL THEN
    SELECT 401 AS code, 0 AS user_id, 0 AS key_id, 0 AS plan_rank;
  ELSE
    SELECT 0 AS code, v_user AS user_id, v_key AS key_id, zg_plan_rank(v_user) AS plan_rank;
  END IF;
END //

-- Admit a request in one round trip: authenticate, check the plan, count it against the rate limit,
-- and (when p_hold > 0) reserve the hold and write the pending usage row, all committed before the
-- upstream call. Idempotent per request id. Refused requests (429, 402) do not use up the hour's
-- count; a 429 while other processes hold unused slices of the hour answers 4290 after recalling
-- them (the caller asks again). One row: code, user_id, key_id, plan_rank, rl_limit, rl_used,
-- rl_reset. code: 0 admitted, 401 bad key, 403 plan too low, 429/4290 rate limited, 402 balance,
-- 4021 key spend limit.
CREATE OR REPLACE PROCEDURE zg_admit(
  IN p_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin, IN p_request_id VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin, IN p_group VARCHAR(16) CHARACTER SET ascii,
  IN p_limit INT, IN p_min_plan INT, IN p_hold BIGINT, IN p_surface VARCHAR(16) CHARACTER SET ascii,
  IN p_model VARCHAR(64) CHARACTER SET ascii, IN p_provider VARCHAR(32) CHARACTER SET ascii)
proc: BEGIN
  DECLARE v_user BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_key BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_plan INT DEFAULT 0;
  DECLARE v_win INT UNSIGNED;
  DECLARE v_hits INT UNSIGNED DEFAULT 0;
  DECLARE v_code INT DEFAULT 0;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;

  SET v_win = UNIX_TIMESTAMP() DIV 3600 * 3600;
  SET v_key = zg_key_find(p_hash);
  SELECT user_id INTO v_user FROM api_keys WHERE id = v_key;
  IF v_key IS NULL THEN
    SELECT 401 AS code, 0 AS user_id, 0 AS key_id, 0 AS plan_rank, p_limit AS rl_limit,
           0 AS rl_used, v_win + 3600 AS rl_reset;
    LEAVE proc;
  END IF;
  SET v_plan = zg_plan_rank(v_user);
  IF p_min_plan > GREATEST(v_plan, 1) THEN
    SELECT 403, v_user, v_key, v_plan, p_limit, 0, v_win + 3600;
    LEAVE proc;
  END IF;
  -- asked again after the answer was lost: the first call admitted it (its pending row exists)
  IF p_hold > 0 AND EXISTS (SELECT 1 FROM usage_log WHERE request_id = p_request_id) THEN
    SELECT 0, v_user, v_key, v_plan, p_limit,
           COALESCE((SELECT hits FROM rate_counters WHERE user_id = v_user AND grp = p_group AND window_start = v_win), 0),
           v_win + 3600;
    LEAVE proc;
  END IF;

  -- one statement counts the request and hands back the new count through LAST_INSERT_ID()
  INSERT INTO rate_counters (user_id, grp, window_start, hits)
    VALUES (v_user, p_group, v_win, LAST_INSERT_ID(1))
    ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + 1);
  SET v_hits = LAST_INSERT_ID();
  IF v_hits > p_limit THEN
    UPDATE rate_counters SET hits = hits - LEAST(hits, 1) WHERE user_id = v_user AND grp = p_group AND window_start = v_win;
    CALL zg_rate_recall(v_user, p_group, v_win, '', 0, v_code);
    SET v_code = IF(v_code = 1, 4290, 429);
    SELECT v_code, v_user, v_key, v_plan, p_limit, v_hits, v_win + 3600;
    LEAVE proc;
  END IF;

  IF p_hold > 0 THEN
    START TRANSACTION;
    UPDATE users SET held = held + p_hold
     WHERE id = v_user AND balance > 0 AND balance - held >= p_hold;
    IF ROW_COUNT() = 0 THEN
      ROLLBACK;
      UPDATE rate_counters SET hits = hits - LEAST(hits, 1) WHERE user_id = v_user AND grp = p_group AND window_start = v_win;
      SELECT 402, v_user, v_key, v_plan, p_limit, v_hits - 1, v_win + 3600;
      LEAVE proc;
    END IF;
    UPDATE api_keys SET held = held + p_hold, last_used_at = NOW(3)
     WHERE id = v_key AND (spend_limit IS NULL OR spent + held + p_hold <= spend_limit);
    IF ROW_COUNT() = 0 THEN
      ROLLBACK;
      UPDATE rate_counters SET hits = hits - LEAST(hits, 1) WHERE user_id = v_user AND grp = p_group AND window_start = v_win;
      SELECT 4021, v_user, v_key, v_plan, p_limit, v_hits - 1, v_win + 3600;
      LEAVE proc;
    END IF;
    INSERT INTO usage_log (request_id, user_id, key_id, surface, model, provider, hold_credits)
      VALUES (p_request_id, v_user, v_key, p_surface, p_model, p_provider, p_hold);
    COMMIT;
  ELSE
    UPDATE api_keys SET last_used_at = NOW(3)
     WHERE id = v_key AND (last_used_at IS NULL OR last_used_at < NOW(3) - INTERVAL 60 SECOND);
  END IF;
  SELECT 0, v_user, v_key, v_plan, p_limit, v_hits, v_win + 3600;
END //

CREATE OR REPLACE PROCEDURE zg_settle(
  IN p_request_id VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin, IN p_status VARCHAR(16) CHARACTER SET ascii, IN p_end_reason VARCHAR(24) CHARACTER SET ascii,
  IN p_credits BIGINT,
  IN p_in BIGINT, IN p_out BIGINT, IN p_cr BIGINT, IN p_cw5 BIGINT, IN p_cw1h BIGINT, IN p_reason BIGINT,
  IN p_units INT, IN p_estimated TINYINT, IN p_upstream_status INT, IN p_ttfb INT, IN p_duration INT,
  IN p_channel VARCHAR(64) CHARACTER SET ascii, IN p_attempts INT)
proc: BEGIN
  DECLARE v_user BIGINT UNSIGNED;
  DECLARE v_key BIGINT UNSIGNED;
  DECLARE v_hold BIGINT;
  DECLARE v_status VARCHAR(16) CHARACTER SET ascii DEFAULT NULL;
  DECLARE v_created DATETIME(3);
  DECLARE v_cash BIGINT DEFAULT 0;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;

  START TRANSACTION;
  SELECT user_id, key_id, hold_credits, status, created_at INTO v_user, v_key, v_hold, v_status, v_created
    FROM usage_log WHERE request_id = p_request_id FOR UPDATE;
  IF v_status IS NULL OR v_status <> 'pending' THEN
    ROLLBACK;
    SELECT 1 AS code, 0 AS cash_micros;
    LEAVE proc;
  END IF;
  UPDATE users SET held = held - v_hold, balance = balance - p_credits WHERE id = v_user;
  UPDATE api_keys SET held = held - v_hold, spent = spent + p_credits WHERE id = v_key;
  CALL zg_consume_lots(v_user, DATE(v_created), p_credits, v_cash);
  UPDATE usage_log SET status = p_status, end_reason = p_end_reason, credits = p_credits,
         cash_micros = v_cash, input_tokens = p_in, output_tokens = p_out, cache_read_tokens = p_cr,
         cache_write_5m_tokens = p_cw5, cache_write_1h_tokens = p_cw1h, reasoning_tokens = p_reason,
         units = p_units, estimated = p_estimated, upstream_status = p_upstream_status,
         ttfb_ms = p_ttfb, duration_ms = p_duration, channel = p_channel, attempts = COALESCE(p_attempts, 1),
         settled_at = NOW(3)
   WHERE request_id = p_request_id;
  CALL zg_rollup(JSON_ARRAY(JSON_ARRAY(p_request_id)));
  COMMIT;
  SELECT 0 AS code, v_cash AS cash_micros;
END //

-- The grant, the one place that adds a lot: a new lot of p_usd_micros × p_mult credits (repaying
-- any overdraft first), the balance, and the lot's receipt with the year's next number. The caller
-- runs it inside its transaction holding p_user's row lock, with p_ref not yet used.
CREATE OR REPLACE PROCEDURE zg_lot_grant(IN p_user BIGINT UNSIGNED, IN p_plan VARCHAR(16), IN p_usd_micros BIGINT,
                                        IN p_mult INT, IN p_ref VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
                                        IN p_method VARCHAR(8), IN p_payment_ref VARCHAR(255) CHARACTER SET ascii,
                                        IN p_currency CHAR(3), IN p_prefix VARCHAR(16) CHARACTER SET ascii,
                                        OUT p_topup BIGINT UNSIGNED, OUT p_credits BIGINT, OUT p_receipt VARCHAR(40))
BEGIN
  DECLARE v_bal BIGINT;
  DECLARE v_year SMALLINT UNSIGNED DEFAULT YEAR(UTC_TIMESTAMP());
  DECLARE v_seq INT UNSIGNED;
  SET p_credits = p_usd_micros * p_mult;
  SELECT balance INTO v_bal FROM users WHERE id = p_user;
  INSERT INTO topups (user_id, plan, usd_micros, multiplier, credits_granted, credits_remaining, ref)
    VALUES (p_user, p_plan, p_usd_micros, p_mult, p_credits, GREATEST(0, p_credits + LEAST(v_bal, 0)), p_ref);
  SET p_topup = LAST_INSERT_ID();
  UPDATE users SET balance = balance + p_credits WHERE id = p_user;
  INSERT INTO receipt_seq (year, last) VALUES (v_year, 1) ON DUPLICATE KEY UPDATE last = last + 1;
  SELECT last INTO v_seq FROM receipt_seq WHERE year = v_year;
  SET p_receipt = CONCAT(p_prefix, '-', v_year, '-', IF(v_seq < 1000000, LPAD(v_seq, 6, '0'), v_seq));
  INSERT INTO receipts (number, year, seq, topup_id, user_id, plan, multiplier, usd_micros, credits, currency,
                        method, payment_ref)
    VALUES (p_receipt, v_year, v_seq, p_topup, p_user, p_plan, p_mult, p_usd_micros, p_credits, p_currency,
            p_method, p_payment_ref);
END //

-- Grant a top-up as a new lot, once per reference (a payment made outside the card checkout, e.g. a
-- bank transfer): p_ref already used answers code 1 with the lot it granted then (and grants
-- nothing). One row: code (0 granted now, 1 granted before), topup_id, credits, balance, receipt.
CREATE OR REPLACE PROCEDURE zg_topup(IN p_user BIGINT UNSIGNED, IN p_plan VARCHAR(16), IN p_usd_micros BIGINT,
                                     IN p_mult INT, IN p_ref VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
                                     IN p_prefix VARCHAR(16) CHARACTER SET ascii)
proc: BEGIN
  DECLARE v_bal BIGINT;
  DECLARE v_id BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_credits BIGINT;
  DECLARE v_receipt VARCHAR(40);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  SELECT balance INTO v_bal FROM users WHERE id = p_user FOR UPDATE;
  SELECT t.id, t.credits_granted, r.number INTO v_id, v_credits, v_receipt
    FROM topups t LEFT JOIN receipts r ON r.topup_id = t.id WHERE t.ref = p_ref;
  IF v_id IS NOT NULL THEN
    ROLLBACK;
    SELECT 1 AS code, v_id AS topup_id, v_credits AS credits, v_bal AS balance, v_receipt AS receipt;
    LEAVE proc;
  END IF;
  CALL zg_lot_grant(p_user, p_plan, p_usd_micros, p_mult, p_ref, 'manual', p_ref, 'usd', p_prefix,
                    v_id, v_credits, v_receipt);
  COMMIT;
  SELECT 0 AS code, v_id AS topup_id, v_credits AS credits, v_bal + v_credits AS balance, v_receipt AS receipt;
END //

-- Apply one signed checkout event, at most once (p_event is recorded in the same transaction).
-- p_kind: grant (paid), pending (completed, payment still clearing), failed, expired. The event's
-- session is matched to the checkout the gateway made (by session id; by p_checkout, the id the
-- gateway put in the session's metadata, only while that checkout has no session bound yet); a
-- grant needs the paid amount and currency to equal the checkout's, and grants the checkout's own
-- plan and amount. One row: outcome (granted, duplicate, already_paid, unknown_session, mismatch,
-- pending, failed, expired, ignored), checkout_id, topup_id, credits, receipt.
CREATE OR REPLACE PROCEDURE zg_checkout_event(IN p_event VARCHAR(255) CHARACTER SET ascii,
                                              IN p_type VARCHAR(64) CHARACTER SET ascii, IN p_kind VARCHAR(8),
                                              IN p_session VARCHAR(255) CHARACTER SET ascii,
                                              IN p_checkout BIGINT UNSIGNED, IN p_cents BIGINT,
                                              IN p_currency VARCHAR(8) CHARACTER SET ascii,
                                              IN p_intent VARCHAR(255) CHARACTER SET ascii,
                                              IN p_prefix VARCHAR(16) CHARACTER SET ascii)
proc: BEGIN
  DECLARE v_id BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_user BIGINT UNSIGNED;
  DECLARE v_topup BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_status VARCHAR(16);
  DECLARE v_plan VARCHAR(16);
  DECLARE v_usd BIGINT;
  DECLARE v_mult INT;
  DECLARE v_currency CHAR(3);
  DECLARE v_ref CHAR(27);
  DECLARE v_credits BIGINT DEFAULT NULL;
  DECLARE v_receipt VARCHAR(40) DEFAULT NULL;
  DECLARE v_outcome VARCHAR(32);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  INSERT IGNORE INTO stripe_events (event_id, type) VALUES (p_event, p_type);
  IF ROW_COUNT() = 0 THEN
    ROLLBACK;
    SELECT 'duplicate' AS outcome, NULL AS checkout_id, NULL AS topup_id, NULL AS credits, NULL AS receipt;
    LEAVE proc;
  END IF;
  SELECT id, user_id, status, plan, usd_micros, multiplier, currency, ref, topup_id
    INTO v_id, v_user, v_status, v_plan, v_usd, v_mult, v_currency, v_ref, v_topup
    FROM checkouts WHERE session_id = p_session FOR UPDATE;
  IF v_id IS NULL AND p_checkout IS NOT NULL THEN
    SELECT id, user_id, status, plan, usd_micros, multiplier, currency, ref, topup_id
      INTO v_id, v_user, v_status, v_plan, v_usd, v_mult, v_currency, v_ref, v_topup
      FROM checkouts WHERE id = p_checkout AND session_id IS NULL FOR UPDATE;
    IF v_id IS NOT NULL THEN
      UPDATE checkouts SET session_id = p_session, updated_at = NOW(3) WHERE id = v_id;
    END IF;
  END IF;
  IF v_id IS NULL THEN
    SET v_outcome = 'unknown_session';
  ELSEIF p_kind = 'grant' THEN
    IF v_topup IS NOT NULL THEN
      SET v_outcome = 'already_paid';
    ELSEIF p_cents IS NULL OR p_cents * 10000 <> v_usd OR p_currency IS NULL OR p_currency <> v_currency THEN
      SET v_outcome = 'mismatch';
      UPDATE checkouts SET status = 'mismatch', payment_intent = p_intent, updated_at = NOW(3),
             note = LEFT(CONCAT('paid ', COALESCE(p_cents, '?'), ' ', COALESCE(p_currency, '?'), ' cents, expected ',
                                v_usd DIV 10000, ' ', v_currency, ' cents'), 255)
       WHERE id = v_id;
    ELSE
      SELECT id INTO v_user FROM users WHERE id = v_user FOR UPDATE;
      CALL zg_lot_grant(v_user, v_plan, v_usd, v_mult, CONCAT('checkout:', v_ref), 'card',
                        COALESCE(p_intent, p_session), v_currency, p_prefix, v_topup, v_credits, v_receipt);
      UPDATE checkouts SET status = 'paid', topup_id = v_topup, payment_intent = p_intent, updated_at = NOW(3),
             note = NULL
       WHERE id = v_id;
      SET v_outcome = 'granted';
    END IF;
  ELSEIF v_status NOT IN ('creating', 'open', 'processing') THEN
    SET v_outcome = 'ignored';
  ELSEIF p_kind = 'pending' THEN
    UPDATE checkouts SET status = 'processing', payment_intent = p_intent, updated_at = NOW(3) WHERE id = v_id;
    SET v_outcome = 'pending';
  ELSEIF p_kind IN ('failed', 'expired') THEN
    UPDATE checkouts SET status = p_kind, updated_at = NOW(3) WHERE id = v_id;
    SET v_outcome = p_kind;
  ELSE
    SET v_outcome = 'ignored';
  END IF;
  UPDATE stripe_events SET checkout_id = v_id, outcome = v_outcome WHERE event_id = p_event;
  COMMIT;
  SELECT v_outcome AS outcome, v_id AS checkout_id, v_topup AS topup_id, v_credits AS credits, v_receipt AS receipt;
END //

-- Apply one signed refund event of a card top-up, at most once. p_refunded_cents: the charge's
-- refunded amount so far (cumulative, as the processor reports it); only an increase acts: the
-- lot loses credits in proportion to the money newly returned (cents × 10,000 × multiplier), at
-- most what it has left (spent credits stay spent), and the balance with it. One row: outcome
-- (refunded, duplicate, unknown_payment, stale), checkout_id, credits revoked.
CREATE OR REPLACE PROCEDURE zg_checkout_refund(IN p_event VARCHAR(255) CHARACTER SET ascii,
                                               IN p_type VARCHAR(64) CHARACTER SET ascii,
                                               IN p_intent VARCHAR(255) CHARACTER SET ascii,
                                               IN p_refunded_cents BIGINT)
proc: BEGIN
  DECLARE v_id BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_user BIGINT UNSIGNED;
  DECLARE v_topup BIGINT UNSIGNED;
  DECLARE v_usd BIGINT;
  DECLARE v_mult INT;
  DECLARE v_done BIGINT;
  DECLARE v_new BIGINT;
  DECLARE v_left BIGINT;
  DECLARE v_take BIGINT DEFAULT 0;
  DECLARE v_outcome VARCHAR(32);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  INSERT IGNORE INTO stripe_events (event_id, type) VALUES (p_event, p_type);
  IF ROW_COUNT() = 0 THEN
    ROLLBACK;
    SELECT 'duplicate' AS outcome, NULL AS checkout_id, 0 AS credits;
    LEAVE proc;
  END IF;
  SELECT id, user_id, topup_id, usd_micros, multiplier, refunded_cents
    INTO v_id, v_user, v_topup, v_usd, v_mult, v_done
    FROM checkouts WHERE payment_intent = p_intent AND topup_id IS NOT NULL FOR UPDATE;
  SET v_new = LEAST(GREATEST(COALESCE(p_refunded_cents, 0), 0), v_usd DIV 10000);
  IF v_id IS NULL THEN
    SET v_outcome = 'unknown_payment';
  ELSEIF v_new <= v_done THEN
    SET v_outcome = 'stale';
  ELSE
    SELECT id INTO v_user FROM users WHERE id = v_user FOR UPDATE;
    SELECT credits_remaining INTO v_left FROM topups WHERE id = v_topup FOR UPDATE;
    SET v_take = LEAST(v_left, (v_new - v_done) * 10000 * v_mult);
    UPDATE topups SET credits_remaining = credits_remaining - v_take WHERE id = v_topup;
    UPDATE users SET balance = balance - v_take WHERE id = v_user;
    INSERT INTO refunds (user_id, topup_id, checkout_id, event_id, amount_cents, credits_revoked)
      VALUES (v_user, v_topup, v_id, p_event, v_new - v_done, v_take);
    UPDATE checkouts SET refunded_cents = v_new, updated_at = NOW(3),
           status = IF(v_new * 10000 >= v_usd, 'refunded', status)
     WHERE id = v_id;
    SET v_outcome = 'refunded';
  END IF;
  UPDATE stripe_events SET checkout_id = v_id, outcome = v_outcome WHERE event_id = p_event;
  COMMIT;
  SELECT v_outcome AS outcome, v_id AS checkout_id, v_take AS credits;
END //

-- The lot walk, the one place that consumes lots: take p_credits from p_user's lots, oldest first,
-- carrying the current lot between calls in (p_lot, p_rem, p_mult, p_taken, p_lot_cash) so that a
-- batch of settlements touches each lot row once. Credits taken from the current lot are written
-- (zg_lot_put, counted in lot_daily under p_day, the UTC day the requests started) when the walk
-- moves past it, and by the caller when it is done. Start a user's walk with p_lot = 0, p_rem = 0,
-- p_taken = 0, p_lot_cash = 0. p_cash: the money consumed in micro-dollars (each lot piece's credits
-- divided by its multiplier, rounded). Credits beyond the last lot are taken from no lot (overdraft).
CREATE OR REPLACE PROCEDURE zg_lot_walk(IN p_user BIGINT UNSIGNED, IN p_day DATE, IN p_credits BIGINT,
                                       INOUT p_lot BIGINT UNSIGNED, INOUT p_rem BIGINT, INOUT p_mult INT,
                                       INOUT p_taken BIGINT, INOUT p_lot_cash BIGINT, OUT p_cash BIGINT)
BEGIN
  DECLARE v_left BIGINT DEFAULT p_credits;
  DECLARE v_take BIGINT;
  DECLARE v_piece BIGINT;
  DECLARE v_found INT DEFAULT 1;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_found = 0;
  SET p_cash = 0;
  lots: WHILE v_left > 0 DO
    IF p_rem <= 0 THEN
      CALL zg_lot_put(p_user, p_day, p_lot, p_taken, p_lot_cash);
      SET p_taken = 0, p_lot_cash = 0, p_rem = 0, v_found = 1;
      SELECT id, credits_remaining, multiplier INTO p_lot, p_rem, p_mult FROM topups
       WHERE user_id = p_user AND credits_remaining > 0 AND id > p_lot ORDER BY id LIMIT 1 FOR UPDATE;
      IF v_found = 0 THEN SET p_rem = 0; LEAVE lots; END IF;
    END IF;
    SET v_take = LEAST(v_left, p_rem);
    SET v_piece = (v_take + p_mult DIV 2) DIV p_mult;
    SET p_rem = p_rem - v_take, p_taken = p_taken + v_take, v_left = v_left - v_take;
    SET p_cash = p_cash + v_piece, p_lot_cash = p_lot_cash + v_piece;
  END WHILE;
END //

-- Write what a lot walk took from lot p_lot: the lot's remaining credits, and p_user's lot_daily row
-- for p_day (credits and their cash value).
CREATE OR REPLACE PROCEDURE zg_lot_put(IN p_user BIGINT UNSIGNED, IN p_day DATE, IN p_lot BIGINT UNSIGNED,
                                      IN p_taken BIGINT, IN p_cash BIGINT)
BEGIN
  IF p_taken > 0 THEN
    UPDATE topups SET credits_remaining = credits_remaining - p_taken WHERE id = p_lot;
    INSERT INTO lot_daily (user_id, day, topup_id, credits, cash_micros) VALUES (p_user, p_day, p_lot, p_taken, p_cash)
      ON DUPLICATE KEY UPDATE credits = credits + p_taken, cash_micros = cash_micros + p_cash;
  END IF;
END //

-- Consume p_credits of p_user's lots in one walk (zg_lot_walk) for requests of UTC day p_day;
-- p_cash as there.
CREATE OR REPLACE PROCEDURE zg_consume_lots(IN p_user BIGINT UNSIGNED, IN p_day DATE, IN p_credits BIGINT,
                                           OUT p_cash BIGINT)
BEGIN
  DECLARE v_lot BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_rem BIGINT DEFAULT 0;
  DECLARE v_mult INT DEFAULT 1;
  DECLARE v_taken BIGINT DEFAULT 0;
  DECLARE v_lot_cash BIGINT DEFAULT 0;
  CALL zg_lot_walk(p_user, p_day, p_credits, v_lot, v_rem, v_mult, v_taken, v_lot_cash, p_cash);
  CALL zg_lot_put(p_user, p_day, v_lot, v_taken, v_lot_cash);
END //

-- Ask every process to give back the unused rate-limit slices of (p_user, p_group). p_recalled: 1
-- when some lease other than the caller's own (p_owner, p_key) still holds slots of window p_win
-- (the caller should ask again shortly), else 0 (the hour really is used up).
CREATE OR REPLACE PROCEDURE zg_rate_recall(IN p_user BIGINT UNSIGNED, IN p_group VARCHAR(16) CHARACTER SET ascii,
                                          IN p_win INT UNSIGNED, IN p_owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
                                          IN p_key BIGINT UNSIGNED, OUT p_recalled INT)
BEGIN
  DECLARE v_out BIGINT DEFAULT 0;
  SELECT COALESCE(SUM(slots), 0) INTO v_out FROM leases
   WHERE user_id = p_user AND grp = p_group AND slots_window = p_win AND slots > 0
     AND NOT (owner = p_owner AND key_id = p_key);
  SET p_recalled = IF(v_out > 0, 1, 0);
  IF v_out > 0 THEN
    DELETE FROM rate_recalls WHERE created_at < NOW(3) - INTERVAL 1 HOUR LIMIT 100;
    INSERT INTO rate_recalls (user_id, grp) VALUES (p_user, p_group);
  END IF;
END //

-- Take or extend a lease (billing mode "lease") in one round trip: authenticate the key, check the
-- plan, reserve up to p_want credits (at most 1/p_share of what the user and the key have free, and
-- at least p_need, else nothing) and requests of the hour's rate limit (at most 1/p_share of what is
-- left, at least 1). One row: code (0 granted; 1 too little free credit for a lease: admit this
-- request the strict way; 401, 403, 429, 4290), user_id, key_id, plan_rank, rl_limit, rl_used,
-- rl_reset, credits granted, slots granted, and the access version the key was checked at. Applied
-- once per p_op (a repeated operation answers its first
-- grant). Slots granted are recorded on the lease row; a caller
-- asking for slots with p_want_slots > 0 has none left, so its row's count drops to 0 first, and when
-- the hour's count is used up while other processes hold unused slices, the answer is 4290
-- (recalled: ask again). A negative p_want_slots tops up a slice still in use and recalls nothing.
CREATE OR REPLACE PROCEDURE zg_lease(
  IN p_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin, IN p_owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
  IN p_group VARCHAR(16) CHARACTER SET ascii, IN p_limit INT, IN p_min_plan INT,
  IN p_need BIGINT, IN p_want BIGINT, IN p_want_slots INT, IN p_share INT,
  IN p_op VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin)
proc: BEGIN
  DECLARE v_user BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_key BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_plan INT DEFAULT 0;
  DECLARE v_win INT UNSIGNED;
  DECLARE v_hits INT UNSIGNED DEFAULT 0;
  DECLARE v_slots INT DEFAULT 0;
  DECLARE v_free BIGINT DEFAULT 0;
  DECLARE v_kfree BIGINT DEFAULT NULL;
  DECLARE v_grant BIGINT DEFAULT 0;
  DECLARE v_code INT DEFAULT 0;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;

  SET v_win = UNIX_TIMESTAMP() DIV 3600 * 3600;
  -- the same operation again (its answer was lost): what it granted the first time
  IF EXISTS (SELECT 1 FROM lease_ops WHERE op_id = p_op) THEN
    SELECT 0, user_id, key_id, plan_rank, rl_limit, rl_used, rl_reset, credits, slots, version
      FROM lease_ops WHERE op_id = p_op;
    LEAVE proc;
  END IF;
  START TRANSACTION;
  SET v_key = zg_key_find(p_hash);
  SELECT user_id INTO v_user FROM api_keys WHERE id = v_key;
  IF v_key IS NOT NULL THEN
    -- rows are locked user first, then key, everywhere money moves: no deadlocks between them
    SELECT balance - held INTO v_free FROM users WHERE id = v_user FOR UPDATE;
    SELECT spend_limit - spent - held INTO v_kfree FROM api_keys WHERE id = v_key FOR UPDATE;
  END IF;
  IF v_key IS NULL THEN
    ROLLBACK;
    SELECT 401 AS code, 0 AS user_id, 0 AS key_id, 0 AS plan_rank, p_limit AS rl_limit,
           0 AS rl_used, v_win + 3600 AS rl_reset, 0 AS credits, 0 AS slots;
    LEAVE proc;
  END IF;
  SET v_plan = zg_plan_rank(v_user);
  IF p_min_plan > GREATEST(v_plan, 1) THEN
    ROLLBACK;
    SELECT 403, v_user, v_key, v_plan, p_limit, 0, v_win + 3600, 0, 0;
    LEAVE proc;
  END IF;
  IF p_want > 0 THEN
    SET v_grant = LEAST(p_want, v_free DIV p_share, COALESCE(v_kfree DIV p_share, p_want));
    IF v_grant < p_need OR v_grant <= 0 THEN
      ROLLBACK;
      SELECT 1, v_user, v_key, v_plan, p_limit, 0, v_win + 3600, 0, 0;
      LEAVE proc;
    END IF;
  END IF;
  SELECT hits INTO v_hits FROM rate_counters
   WHERE user_id = v_user AND grp = p_group AND window_start = v_win FOR UPDATE;
  -- requests of the hour only when asked for (a lease topped up for credit keeps its slots):
  -- p_want_slots > 0 from a process that has none left, < 0 (-wanted) from one topping up its slice
  IF p_want_slots <> 0 THEN
    IF p_want_slots > 0 THEN
      UPDATE leases SET slots = 0 WHERE owner = p_owner AND key_id = v_key AND grp = p_group;
    END IF;
    IF v_hits >= p_limit THEN
      COMMIT;
      SET v_code = 0;
      IF p_want_slots > 0 THEN
        CALL zg_rate_recall(v_user, p_group, v_win, p_owner, v_key, v_code);
      END IF;
      SET v_code = IF(v_code = 1, 4290, 429);
      SELECT v_code, v_user, v_key, v_plan, p_limit, v_hits + 1, v_win + 3600, 0, 0;
      LEAVE proc;
    END IF;
    SET v_slots = GREATEST(1, LEAST(ABS(p_want_slots), (p_limit - v_hits) DIV p_share));
    INSERT INTO rate_counters (user_id, grp, window_start, hits) VALUES (v_user, p_group, v_win, v_slots)
      ON DUPLICATE KEY UPDATE hits = hits + v_slots;
  END IF;
  IF v_grant > 0 THEN
    UPDATE users SET held = held + v_grant WHERE id = v_user;
    UPDATE api_keys SET held = held + v_grant, last_used_at = NOW(3) WHERE id = v_key;
  END IF;
  INSERT INTO leases (owner, key_id, grp, user_id, credits, slots, slots_window)
    VALUES (p_owner, v_key, p_group, v_user, v_grant, v_slots, v_win)
    ON DUPLICATE KEY UPDATE credits = credits + v_grant,
      slots = IF(slots_window = v_win, slots + v_slots, v_slots), slots_window = v_win, renewed_at = NOW(3);
  INSERT INTO lease_ops (op_id, user_id, key_id, plan_rank, rl_limit, rl_used, rl_reset, credits, slots, version)
    VALUES (p_op, v_user, v_key, v_plan, p_limit, v_hits + v_slots, v_win + 3600, v_grant, v_slots,
            (SELECT version FROM catalog_version WHERE id = 2));
  COMMIT;
  SELECT 0, v_user, v_key, v_plan, p_limit, v_hits + v_slots, v_win + 3600, v_grant, v_slots,
         (SELECT version FROM catalog_version WHERE id = 2);
  IF RAND() < 0.01 THEN
    DELETE FROM lease_ops WHERE created_at < NOW(3) - INTERVAL 1 DAY LIMIT 1000;
  END IF;
END //

-- Give back what a lease still reserves. One lease (p_key, p_group): p_credits leave users.held,
-- api_keys.held and the lease row (deleted when it reaches zero), and p_slots unused requests of the
-- hour window starting at p_window go back to the rate counter. Every lease of p_owner (p_key = 0,
-- after the owner died): whatever the rows still reserve is released and the rows deleted. A single
-- lease's row also forgets its
-- slots: the caller holds none of them any more (p_slots were unused and go back to the counter).
-- Applied once per p_op.
CREATE OR REPLACE PROCEDURE zg_lease_drop(
  IN p_owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin, IN p_key BIGINT UNSIGNED,
  IN p_group VARCHAR(16) CHARACTER SET ascii, IN p_credits BIGINT, IN p_slots INT, IN p_window INT UNSIGNED,
  IN p_op VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin)
proc: BEGIN
  DECLARE v_user BIGINT UNSIGNED DEFAULT NULL;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  -- each return is applied once: the same operation again (its answer was lost) does nothing
  INSERT IGNORE INTO lease_ops (op_id) VALUES (p_op);
  IF ROW_COUNT() = 0 THEN
    ROLLBACK;
    LEAVE proc;
  END IF;
  IF p_key = 0 THEN
    UPDATE users u JOIN (SELECT user_id, SUM(credits) c FROM leases WHERE owner = p_owner GROUP BY user_id) t
        ON t.user_id = u.id
       SET u.held = u.held - t.c;
    UPDATE api_keys k JOIN (SELECT key_id, SUM(credits) c FROM leases WHERE owner = p_owner GROUP BY key_id) t
        ON t.key_id = k.id
       SET k.held = k.held - t.c;
    DELETE FROM leases WHERE owner = p_owner;
  ELSE
    SELECT user_id INTO v_user FROM api_keys WHERE id = p_key;
    IF p_credits <> 0 THEN
      UPDATE users SET held = held - p_credits WHERE id = v_user;
      UPDATE api_keys SET held = held - p_credits WHERE id = p_key;
      UPDATE leases SET credits = credits - p_credits WHERE owner = p_owner AND key_id = p_key AND grp = p_group;
    END IF;
    UPDATE leases SET slots = 0 WHERE owner = p_owner AND key_id = p_key AND grp = p_group;
    DELETE FROM leases WHERE owner = p_owner AND key_id = p_key AND grp = p_group AND credits = 0;
    IF p_slots > 0 THEN
      UPDATE rate_counters SET hits = hits - LEAST(hits, p_slots)
       WHERE user_id = v_user AND grp = p_group AND window_start = p_window;
    END IF;
  END IF;
  COMMIT;
END //

-- Write one finished request that was admitted under a lease and never had a pending row (a dead
-- process's journal, or a batch that zg_flush refused). Idempotent per request id: a request already
-- in usage_log is left alone (code 1). Debits balance, key and lots; p_released credits of it came
-- out of p_owner's lease on (p_key, p_group) and leave the holds, as far as that lease still holds
-- them: a lease released meanwhile (its node lost, see zg_lease_drop) gave its credits back already.
-- One row: code, cash_micros.
CREATE OR REPLACE PROCEDURE zg_settle_direct(
  IN p_owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin, IN p_group VARCHAR(16) CHARACTER SET ascii,
  IN p_released BIGINT, IN p_request_id VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin, IN p_user BIGINT UNSIGNED,
  IN p_key BIGINT UNSIGNED, IN p_surface VARCHAR(16) CHARACTER SET ascii, IN p_model VARCHAR(64) CHARACTER SET ascii,
  IN p_provider VARCHAR(32) CHARACTER SET ascii, IN p_hold BIGINT, IN p_status VARCHAR(16) CHARACTER SET ascii,
  IN p_end_reason VARCHAR(24) CHARACTER SET ascii, IN p_credits BIGINT,
  IN p_in BIGINT, IN p_out BIGINT, IN p_cr BIGINT, IN p_cw5 BIGINT, IN p_cw1h BIGINT, IN p_reason BIGINT,
  IN p_units INT, IN p_estimated TINYINT, IN p_upstream_status INT, IN p_ttfb INT, IN p_duration INT,
  IN p_channel VARCHAR(64) CHARACTER SET ascii, IN p_attempts INT)
proc: BEGIN
  DECLARE v_cash BIGINT DEFAULT 0;
  DECLARE v_rel BIGINT DEFAULT 0;
  DECLARE v_lock BIGINT UNSIGNED;
  DECLARE v_now DATETIME(3) DEFAULT NOW(3);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  INSERT IGNORE INTO usage_log (request_id, user_id, key_id, surface, model, provider, status, end_reason,
         hold_credits, credits, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens,
         cache_write_1h_tokens, reasoning_tokens, units, estimated, upstream_status, ttfb_ms, duration_ms,
         channel, attempts, created_at, settled_at)
  VALUES (p_request_id, p_user, p_key, p_surface, p_model, p_provider, p_status, p_end_reason, p_hold,
          p_credits, p_in, p_out, p_cr, p_cw5, p_cw1h, p_reason, p_units, p_estimated, p_upstream_status,
          p_ttfb, p_duration, p_channel, COALESCE(p_attempts, 1), v_now, v_now);
  IF ROW_COUNT() = 0 THEN
    ROLLBACK;
    SELECT 1 AS code, 0 AS cash_micros;
    LEAVE proc;
  END IF;
  SELECT id INTO v_lock FROM users WHERE id = p_user FOR UPDATE;
  IF p_released > 0 THEN
    SELECT COALESCE(MAX(LEAST(p_released, GREATEST(credits, 0))), 0) INTO v_rel FROM leases
     WHERE owner = p_owner AND key_id = p_key AND grp = p_group FOR UPDATE;
  END IF;
  UPDATE users SET balance = balance - p_credits, held = held - v_rel WHERE id = p_user;
  UPDATE api_keys SET spent = spent + p_credits, held = held - v_rel WHERE id = p_key;
  IF v_rel <> 0 THEN
    UPDATE leases SET credits = credits - v_rel WHERE owner = p_owner AND key_id = p_key AND grp = p_group;
  END IF;
  CALL zg_consume_lots(p_user, DATE(v_now), p_credits, v_cash);
  UPDATE usage_log SET cash_micros = v_cash WHERE request_id = p_request_id;
  CALL zg_rollup(JSON_ARRAY(JSON_ARRAY(p_request_id)));
  COMMIT;
  SELECT 0 AS code, v_cash AS cash_micros;
END //

-- Write a batch of finished lease requests in one transaction (billing mode "lease"). p_rows is a
-- JSON array of arrays: [request_id, user_id, key_id, group, surface, model, provider, hold, status,
-- end_reason, credits, released, input, output, cache_read, cache_write_5m, cache_write_1h,
-- reasoning, units, estimated, upstream_status, ttfb_ms, duration_ms, channel, attempts] (the last
-- two may be missing: none, 1); "released" is the part of
-- the credits that came out of p_owner's lease on (key_id, group), released from the holds while
-- that lease exists (one released meanwhile as a lost node's gave its credits back). Each row's lots are consumed by
-- the one lot walk (zg_lot_walk), carried from row to row of a user so each lot row is written
-- once; the rows are added to the rollup (zg_rollup) in the same transaction. A request id already
-- written fails the whole batch (duplicate key) so the caller can fall back to zg_settle_direct per row.
-- One row: the number of rows written.
CREATE OR REPLACE PROCEDURE zg_flush(IN p_owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin, IN p_rows LONGTEXT)
BEGIN
  DECLARE v_done INT DEFAULT 0;
  DECLARE v_n INT DEFAULT 0;
  DECLARE v_rid VARCHAR(40) CHARACTER SET ascii;
  DECLARE v_user BIGINT UNSIGNED;
  DECLARE v_cur_user BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_key BIGINT UNSIGNED;
  DECLARE v_surface VARCHAR(16) CHARACTER SET ascii;
  DECLARE v_model VARCHAR(64) CHARACTER SET ascii;
  DECLARE v_provider VARCHAR(32) CHARACTER SET ascii;
  DECLARE v_status VARCHAR(16) CHARACTER SET ascii;
  DECLARE v_reason VARCHAR(24) CHARACTER SET ascii;
  DECLARE v_hold, v_credits, v_rel, v_in, v_out, v_cr, v_cw5, v_cw1h, v_rsn, v_cash BIGINT;
  DECLARE v_sum, v_sum_rel BIGINT DEFAULT 0;
  DECLARE v_lot BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_lot_rem, v_lot_taken, v_lot_cash BIGINT DEFAULT 0;
  DECLARE v_now DATETIME(3) DEFAULT NOW(3);
  DECLARE v_mult INT DEFAULT 1;
  DECLARE v_lock BIGINT UNSIGNED;
  DECLARE v_units, v_est, v_ups, v_ttfb, v_dur, v_att INT;
  DECLARE v_chan VARCHAR(64) CHARACTER SET ascii;
  DECLARE cur CURSOR FOR
    SELECT rid, j.user_id, j.key_id, surface, model, provider, hold, status, end_reason, j.credits,
           IF(l.owner IS NULL, 0, rel), i, o, cr, cw5, cw1h, rsn, units, est, ups, ttfb, dur, chan, att
      FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
             seq FOR ORDINALITY,
             rid VARCHAR(40) PATH '$[0]', user_id BIGINT UNSIGNED PATH '$[1]', key_id BIGINT UNSIGNED PATH '$[2]',
             grp VARCHAR(16) PATH '$[3]', surface VARCHAR(16) PATH '$[4]', model VARCHAR(64) PATH '$[5]', provider VARCHAR(32) PATH '$[6]',
             hold BIGINT PATH '$[7]', status VARCHAR(16) PATH '$[8]', end_reason VARCHAR(24) PATH '$[9]',
             credits BIGINT PATH '$[10]', rel BIGINT PATH '$[11]', i BIGINT PATH '$[12]', o BIGINT PATH '$[13]', cr BIGINT PATH '$[14]',
             cw5 BIGINT PATH '$[15]', cw1h BIGINT PATH '$[16]', rsn BIGINT PATH '$[17]', units INT PATH '$[18]',
             est INT PATH '$[19]', ups INT PATH '$[20]', ttfb INT PATH '$[21]', dur INT PATH '$[22]',
             chan VARCHAR(64) PATH '$[23]', att INT PATH '$[24]')) j
      LEFT JOIN leases l ON l.owner = p_owner AND l.key_id = j.key_id AND l.grp = j.grp
     ORDER BY j.user_id, seq;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;

  START TRANSACTION;
  -- users one by one in id order (each locked before its lots and keys: the order every money
  -- transaction follows), then keys and leases in one statement each
  OPEN cur;
  rows_: LOOP
    FETCH cur INTO v_rid, v_user, v_key, v_surface, v_model, v_provider, v_hold, v_status, v_reason, v_credits,
                   v_rel, v_in, v_out, v_cr, v_cw5, v_cw1h, v_rsn, v_units, v_est, v_ups, v_ttfb, v_dur,
                   v_chan, v_att;
    IF v_done = 1 THEN LEAVE rows_; END IF;
    IF v_user <> v_cur_user THEN
      IF v_cur_user <> 0 THEN
        UPDATE users SET balance = balance - v_sum, held = held - v_sum_rel WHERE id = v_cur_user;
        CALL zg_lot_put(v_cur_user, DATE(v_now), v_lot, v_lot_taken, v_lot_cash);
      END IF;
      SET v_cur_user = v_user, v_sum = 0, v_sum_rel = 0, v_lot = 0, v_lot_rem = 0, v_lot_taken = 0, v_lot_cash = 0;
      SELECT id INTO v_lock FROM users WHERE id = v_user FOR UPDATE;
    END IF;
    SET v_sum = v_sum + v_credits, v_sum_rel = v_sum_rel + v_rel;
    CALL zg_lot_walk(v_user, DATE(v_now), v_credits, v_lot, v_lot_rem, v_mult, v_lot_taken, v_lot_cash, v_cash);
    SET v_done = 0;
    INSERT INTO usage_log (request_id, user_id, key_id, surface, model, provider, status, end_reason,
           hold_credits, credits, cash_micros, input_tokens, output_tokens, cache_read_tokens,
           cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, units, estimated, upstream_status,
           ttfb_ms, duration_ms, channel, attempts, created_at, settled_at)
    VALUES (v_rid, v_user, v_key, v_surface, v_model, v_provider, v_status, v_reason, v_hold, v_credits,
            v_cash, v_in, v_out, v_cr, v_cw5, v_cw1h, v_rsn, v_units, v_est, v_ups, v_ttfb, v_dur, v_chan,
            COALESCE(v_att, 1), v_now, v_now);
    SET v_n = v_n + 1;
  END LOOP;
  CLOSE cur;
  IF v_cur_user <> 0 THEN
    UPDATE users SET balance = balance - v_sum, held = held - v_sum_rel WHERE id = v_cur_user;
    CALL zg_lot_put(v_cur_user, DATE(v_now), v_lot, v_lot_taken, v_lot_cash);
  END IF;
  UPDATE api_keys k JOIN (SELECT j.key_id, SUM(j.credits) c, SUM(IF(l.owner IS NULL, 0, j.rel)) r
           FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (key_id BIGINT UNSIGNED PATH '$[2]', grp VARCHAR(16) PATH '$[3]',
                credits BIGINT PATH '$[10]', rel BIGINT PATH '$[11]')) j
           LEFT JOIN leases l ON l.owner = p_owner AND l.key_id = j.key_id AND l.grp = j.grp
         GROUP BY j.key_id) t ON t.key_id = k.id
     SET k.spent = k.spent + t.c, k.held = k.held - t.r, k.last_used_at = NOW(3);
  UPDATE leases l JOIN (SELECT key_id, grp, SUM(rel) r FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
           key_id BIGINT UNSIGNED PATH '$[2]', grp VARCHAR(16) PATH '$[3]', rel BIGINT PATH '$[11]')) j
         GROUP BY key_id, grp) t ON l.owner = p_owner AND l.key_id = t.key_id AND l.grp = t.grp
     SET l.credits = l.credits - t.r, l.renewed_at = NOW(3);
  CALL zg_rollup(p_rows);
  COMMIT;
  SELECT v_n AS n;
END //

-- Each usage row's contribution to the rollups: the one rule for what a row counts as (zg_rollup,
-- zg_rollup_rebuild and `zenn-admin db check` sum these columns; the request log filters on errors).
CREATE OR REPLACE VIEW usage_measures AS
  SELECT id, request_id, user_id, DATE(created_at) AS day, created_at, key_id, model, surface, provider,
         status, end_reason, upstream_status, ttfb_ms, duration_ms, 1 AS requests, IF(COALESCE(end_reason, '') IN ('complete', 'client_closed'), 0, 1) AS errors,
         estimated, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens,
         cache_write_1h_tokens, reasoning_tokens, units, COALESCE(credits, 0) AS credits,
         COALESCE(cash_micros, 0) AS cash_micros, COALESCE(ttfb_ms, 0) AS ttfb_ms_sum,
         IF(ttfb_ms IS NULL, 0, 1) AS ttfb_n, COALESCE(duration_ms, 0) AS duration_ms_sum,
         IF(duration_ms IS NULL, 0, 1) AS duration_n
    FROM usage_log //

-- Add settled usage rows to the rollup, in the settling transaction. p_rows: a JSON array of arrays
-- whose first member is a request id (zg_flush's rows, or [[request_id]]); each row once.
CREATE OR REPLACE PROCEDURE zg_rollup(IN p_rows LONGTEXT)
BEGIN
  INSERT INTO usage_daily (user_id, day, key_id, model, surface, requests, errors, estimated, input_tokens,
         output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens,
         units, credits, cash_micros, ttfb_ms_sum, ttfb_n, duration_ms_sum, duration_n)
  SELECT m.user_id, m.day, m.key_id, m.model, m.surface, SUM(m.requests), SUM(m.errors), SUM(m.estimated),
         SUM(m.input_tokens), SUM(m.output_tokens), SUM(m.cache_read_tokens), SUM(m.cache_write_5m_tokens),
         SUM(m.cache_write_1h_tokens), SUM(m.reasoning_tokens), SUM(m.units), SUM(m.credits),
         SUM(m.cash_micros), SUM(m.ttfb_ms_sum), SUM(m.ttfb_n), SUM(m.duration_ms_sum), SUM(m.duration_n)
    FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (rid VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin PATH '$[0]')) j
    JOIN usage_measures m ON m.request_id = j.rid
   WHERE m.status <> 'pending'
   GROUP BY m.user_id, m.day, m.key_id, m.model, m.surface
  ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests), errors = errors + VALUES(errors),
         estimated = estimated + VALUES(estimated), input_tokens = input_tokens + VALUES(input_tokens),
         output_tokens = output_tokens + VALUES(output_tokens),
         cache_read_tokens = cache_read_tokens + VALUES(cache_read_tokens),
         cache_write_5m_tokens = cache_write_5m_tokens + VALUES(cache_write_5m_tokens),
         cache_write_1h_tokens = cache_write_1h_tokens + VALUES(cache_write_1h_tokens),
         reasoning_tokens = reasoning_tokens + VALUES(reasoning_tokens), units = units + VALUES(units),
         credits = credits + VALUES(credits), cash_micros = cash_micros + VALUES(cash_micros),
         ttfb_ms_sum = ttfb_ms_sum + VALUES(ttfb_ms_sum), ttfb_n = ttfb_n + VALUES(ttfb_n),
         duration_ms_sum = duration_ms_sum + VALUES(duration_ms_sum), duration_n = duration_n + VALUES(duration_n);
END //

-- Recompute p_user's rollup rows from the raw rows still kept (days from usage_state.raw_from on).
-- Holds the user's row lock, which every settlement takes before it adds to the rollup, so it is
-- exact while the gateway runs. Used by the migration's backfill and `zenn-admin db check --repair`.
CREATE OR REPLACE PROCEDURE zg_rollup_rebuild(IN p_user BIGINT UNSIGNED)
BEGIN
  DECLARE v_lock BIGINT UNSIGNED;
  DECLARE v_from DATE;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  SELECT id INTO v_lock FROM users WHERE id = p_user FOR UPDATE;
  SELECT raw_from INTO v_from FROM usage_state WHERE id = 1;
  DELETE FROM usage_daily WHERE user_id = p_user AND day >= v_from;
  INSERT INTO usage_daily (user_id, day, key_id, model, surface, requests, errors, estimated, input_tokens,
         output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens,
         units, credits, cash_micros, ttfb_ms_sum, ttfb_n, duration_ms_sum, duration_n)
  SELECT m.user_id, m.day, m.key_id, m.model, m.surface, SUM(m.requests), SUM(m.errors), SUM(m.estimated),
         SUM(m.input_tokens), SUM(m.output_tokens), SUM(m.cache_read_tokens), SUM(m.cache_write_5m_tokens),
         SUM(m.cache_write_1h_tokens), SUM(m.reasoning_tokens), SUM(m.units), SUM(m.credits),
         SUM(m.cash_micros), SUM(m.ttfb_ms_sum), SUM(m.ttfb_n), SUM(m.duration_ms_sum), SUM(m.duration_n)
    FROM usage_measures m
   WHERE m.user_id = p_user AND m.created_at >= v_from AND m.status <> 'pending'
   GROUP BY m.user_id, m.day, m.key_id, m.model, m.surface;
  COMMIT;
END //

-- Retention: delete settled raw usage rows that started before UTC today − p_keep_days, at most
-- p_limit of them (call again while it deletes some); the rollups keep their totals. One row: n.
CREATE OR REPLACE PROCEDURE zg_usage_purge(IN p_keep_days INT, IN p_limit INT)
BEGIN
  DECLARE v_before DATE DEFAULT UTC_DATE() - INTERVAL p_keep_days DAY;
  UPDATE usage_state SET raw_from = v_before WHERE id = 1 AND raw_from < v_before;
  DELETE FROM usage_log WHERE status IN ('settled', 'abandoned') AND created_at < v_before LIMIT p_limit;
  SELECT ROW_COUNT() AS n;
END //

-- zg_conc_take(owner, user, have, want, cap, stale_s): the owner, holding `have` slots of the
-- user, wants up to `want` more. Granted as many as the slots held by all live owners (rows renewed
-- within stale_s seconds; older ones are a dead process's and are dropped) leave room for under
-- cap. Idempotent: the owner's row is set to have + granted, not incremented, so a call repeated
-- after a lost answer grants the same slots. -> granted (0 when the cap is reached), held (the
-- user's slots now, all owners).
DROP PROCEDURE IF EXISTS zg_conc_take //
CREATE PROCEDURE zg_conc_take(IN p_owner VARCHAR(160), IN p_user BIGINT UNSIGNED, IN p_have INT,
                              IN p_want INT, IN p_cap INT, IN p_stale INT)
BEGIN
  DECLARE v_others INT DEFAULT 0;
  DECLARE v_have INT DEFAULT GREATEST(p_have, 0);
  DECLARE v_granted INT DEFAULT 0;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  INSERT INTO conc_users (user_id) VALUES (p_user) ON DUPLICATE KEY UPDATE changes = changes + 1;
  DELETE FROM conc_slots WHERE user_id = p_user AND renewed_at < NOW(3) - INTERVAL p_stale SECOND;
  SELECT COALESCE(SUM(slots), 0) INTO v_others FROM conc_slots WHERE user_id = p_user AND owner <> p_owner;
  SET v_granted = GREATEST(LEAST(GREATEST(p_want, 1), p_cap - v_others - v_have), 0);
  IF v_granted > 0 THEN
    INSERT INTO conc_slots (user_id, owner, slots) VALUES (p_user, p_owner, v_have + v_granted)
      ON DUPLICATE KEY UPDATE slots = v_have + v_granted, renewed_at = NOW(3);
  END IF;
  COMMIT;
  SELECT v_granted AS granted, v_others + v_have + v_granted AS held;
END //

-- zg_conc_set(owner, user, slots): the owner now holds exactly `slots` of the user's (0 drops its
-- row). Idempotent.
DROP PROCEDURE IF EXISTS zg_conc_set //
CREATE PROCEDURE zg_conc_set(IN p_owner VARCHAR(160), IN p_user BIGINT UNSIGNED, IN p_slots INT)
BEGIN
  IF p_slots > 0 THEN
    UPDATE conc_slots SET slots = p_slots, renewed_at = NOW(3) WHERE user_id = p_user AND owner = p_owner;
  ELSE
    DELETE FROM conc_slots WHERE user_id = p_user AND owner = p_owner;
  END IF;
END //

DELIMITER ;

INSERT IGNORE INTO schema_version (version) VALUES (9);
INSERT IGNORE INTO schema_version (version) VALUES (10);
