-- zenn-gateway schema, version 1.
-- Applied by `zenn-admin db migrate` (which splits on DELIMITER lines like the mariadb client does),
-- or by hand: mariadb zenn < sql/schema.sql.
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
  KEY ix_topups_user (user_id, credits_remaining),
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
  UNIQUE KEY uq_keys_hash (key_hash),
  UNIQUE KEY uq_keys_prefix (prefix),
  KEY ix_keys_user (user_id),
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
  sort_order             INT NOT NULL DEFAULT 0
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
  created_at              DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  settled_at              DATETIME(3) NULL,
  UNIQUE KEY uq_usage_request (request_id),
  KEY ix_usage_user (user_id, created_at),
  KEY ix_usage_pending (status, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

DELIMITER //

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
  SELECT k.id, k.user_id INTO v_key, v_user
    FROM api_keys k JOIN users u ON u.id = k.user_id
   WHERE k.key_hash = p_hash AND k.status = 'active' AND u.status = 'active';
  IF v_key IS NULL THEN
    SELECT 401 AS code, 0 AS user_id, 0 AS key_id, 0 AS plan_rank;
  ELSE
    SELECT 0 AS code, v_user AS user_id, v_key AS key_id, zg_plan_rank(v_user) AS plan_rank;
  END IF;
END //

-- Admit a request in one round trip: authenticate, check the plan, count it against the rate limit,
-- and (when p_hold > 0) reserve the hold and write the pending usage row, all committed before the
-- upstream call. One row: code, user_id, key_id, plan_rank, rl_limit, rl_used, rl_reset.
-- code: 0 admitted, 401 bad key, 403 plan too low, 429 rate limited, 402 balance, 4021 key spend limit.
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
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;

  SET v_win = UNIX_TIMESTAMP() DIV 3600 * 3600;
  SELECT k.id, k.user_id INTO v_key, v_user
    FROM api_keys k JOIN users u ON u.id = k.user_id
   WHERE k.key_hash = p_hash AND k.status = 'active' AND u.status = 'active';
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

  -- one statement counts the request and hands back the new count through LAST_INSERT_ID()
  INSERT INTO rate_counters (user_id, grp, window_start, hits)
    VALUES (v_user, p_group, v_win, LAST_INSERT_ID(1))
    ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + 1);
  SET v_hits = LAST_INSERT_ID();
  IF v_hits > p_limit THEN
    SELECT 429, v_user, v_key, v_plan, p_limit, v_hits, v_win + 3600;
    LEAVE proc;
  END IF;

  IF p_hold > 0 THEN
    START TRANSACTION;
    UPDATE users SET held = held + p_hold
     WHERE id = v_user AND balance > 0 AND balance - held >= p_hold;
    IF ROW_COUNT() = 0 THEN
      ROLLBACK;
      SELECT 402, v_user, v_key, v_plan, p_limit, v_hits, v_win + 3600;
      LEAVE proc;
    END IF;
    UPDATE api_keys SET held = held + p_hold, last_used_at = NOW(3)
     WHERE id = v_key AND (spend_limit IS NULL OR spent + held + p_hold <= spend_limit);
    IF ROW_COUNT() = 0 THEN
      ROLLBACK;
      SELECT 4021, v_user, v_key, v_plan, p_limit, v_hits, v_win + 3600;
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

-- Settle a pending request: release its hold, debit balance and key, consume lots oldest first,
-- and fill in the usage row. Idempotent per request id. One row: code (0 settled now,
-- 1 already settled or unknown), cash_micros.
CREATE OR REPLACE PROCEDURE zg_settle(
  IN p_request_id VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin, IN p_status VARCHAR(16) CHARACTER SET ascii, IN p_end_reason VARCHAR(24) CHARACTER SET ascii,
  IN p_credits BIGINT,
  IN p_in BIGINT, IN p_out BIGINT, IN p_cr BIGINT, IN p_cw5 BIGINT, IN p_cw1h BIGINT, IN p_reason BIGINT,
  IN p_units INT, IN p_estimated TINYINT, IN p_upstream_status INT, IN p_ttfb INT, IN p_duration INT)
proc: BEGIN
  DECLARE v_user BIGINT UNSIGNED;
  DECLARE v_key BIGINT UNSIGNED;
  DECLARE v_hold BIGINT;
  DECLARE v_status VARCHAR(16) CHARACTER SET ascii DEFAULT NULL;
  DECLARE v_left BIGINT;
  DECLARE v_cash BIGINT DEFAULT 0;
  DECLARE v_lot BIGINT UNSIGNED;
  DECLARE v_lot_rem BIGINT;
  DECLARE v_mult INT;
  DECLARE v_take BIGINT;
  DECLARE v_done INT DEFAULT 0;
  DECLARE cur CURSOR FOR
    SELECT id, credits_remaining, multiplier FROM topups
     WHERE user_id = v_user AND credits_remaining > 0 ORDER BY id FOR UPDATE;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;

  START TRANSACTION;
  SELECT user_id, key_id, hold_credits, status INTO v_user, v_key, v_hold, v_status
    FROM usage_log WHERE request_id = p_request_id FOR UPDATE;
  IF v_status IS NULL OR v_status <> 'pending' THEN
    ROLLBACK;
    SELECT 1 AS code, 0 AS cash_micros;
    LEAVE proc;
  END IF;
  SET v_done = 0;
  UPDATE users SET held = held - v_hold, balance = balance - p_credits WHERE id = v_user;
  UPDATE api_keys SET held = held - v_hold, spent = spent + p_credits WHERE id = v_key;
  SET v_left = p_credits;
  IF v_left > 0 THEN
    OPEN cur;
    lots: LOOP
      FETCH cur INTO v_lot, v_lot_rem, v_mult;
      IF v_done = 1 OR v_left <= 0 THEN LEAVE lots; END IF;
      SET v_take = LEAST(v_left, v_lot_rem);
      UPDATE topups SET credits_remaining = credits_remaining - v_take WHERE id = v_lot;
      SET v_cash = v_cash + (v_take + v_mult DIV 2) DIV v_mult;
      SET v_left = v_left - v_take;
    END LOOP;
    CLOSE cur;
  END IF;
  UPDATE usage_log SET status = p_status, end_reason = p_end_reason, credits = p_credits,
         cash_micros = v_cash, input_tokens = p_in, output_tokens = p_out, cache_read_tokens = p_cr,
         cache_write_5m_tokens = p_cw5, cache_write_1h_tokens = p_cw1h, reasoning_tokens = p_reason,
         units = p_units, estimated = p_estimated, upstream_status = p_upstream_status,
         ttfb_ms = p_ttfb, duration_ms = p_duration, settled_at = NOW(3)
   WHERE request_id = p_request_id;
  COMMIT;
  SELECT 0 AS code, v_cash AS cash_micros;
END //

-- Grant a top-up lot. An outstanding overdraft (negative balance) is repaid from the new lot first.
CREATE OR REPLACE PROCEDURE zg_topup(IN p_user BIGINT UNSIGNED, IN p_plan VARCHAR(16), IN p_usd_micros BIGINT,
                                     IN p_mult INT)
BEGIN
  DECLARE v_bal BIGINT;
  DECLARE v_grant BIGINT;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  SET v_grant = p_usd_micros * p_mult;
  START TRANSACTION;
  SELECT balance INTO v_bal FROM users WHERE id = p_user FOR UPDATE;
  INSERT INTO topups (user_id, plan, usd_micros, multiplier, credits_granted, credits_remaining)
    VALUES (p_user, p_plan, p_usd_micros, p_mult, v_grant, GREATEST(0, v_grant + LEAST(v_bal, 0)));
  UPDATE users SET balance = balance + v_grant WHERE id = p_user;
  COMMIT;
  SELECT LAST_INSERT_ID() AS topup_id, v_grant AS credits, v_bal + v_grant AS balance;
END //

DELIMITER ;

INSERT IGNORE INTO schema_version (version) VALUES (1);
