-- zenn-gateway schema, migration 11 (applied by `zenn-admin db migrate` after migration 10):
-- key expiry and browser keys (minted for /chat, bound to a session, revoked with it), the one key
-- lookup (zg_key_find) used by every procedure that authenticates a key, and background image jobs.

ALTER TABLE api_keys
  ADD COLUMN IF NOT EXISTS kind ENUM('api','browser') NOT NULL DEFAULT 'api',
  ADD COLUMN IF NOT EXISTS expires_at DATETIME(3) NULL,
  ADD COLUMN IF NOT EXISTS session_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ADD KEY IF NOT EXISTS ix_keys_expires (expires_at),
  ADD KEY IF NOT EXISTS ix_keys_session (session_hash);

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

DELIMITER //

CREATE OR REPLACE FUNCTION zg_key_find(p_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin) RETURNS BIGINT UNSIGNED
  READS SQL DATA
BEGIN
  DECLARE v BIGINT UNSIGNED DEFAULT NULL;
  SELECT k.id INTO v FROM api_keys k JOIN users u ON u.id = k.user_id
   WHERE k.key_hash = p_hash AND k.status = 'active' AND u.status = 'active'
     AND (k.expires_at IS NULL OR k.expires_at > NOW(3));
  RETURN v;
END //

CREATE OR REPLACE TRIGGER trg_sessions_del AFTER DELETE ON sessions FOR EACH ROW
  UPDATE api_keys SET status = 'revoked', revoked_at = NOW(3)
   WHERE session_hash = OLD.token_hash AND status = 'active' //

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

DELIMITER ;
