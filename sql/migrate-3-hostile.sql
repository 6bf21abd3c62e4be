-- zenn-gateway schema, migration 3 (applied by `zenn-admin db migrate` after migration 2):
-- holds that cover what a request can cost, long-context price tiers, rate-limit slices that are
-- recalled before a request is refused, and money-moving calls that are safe to repeat (a top-up
-- reference, an id per lease operation, admission idempotent per request id).

-- Per model: the context window, the input a hold assumes when the provider expands input itself
-- (files and images by URL or id, previous_response_id, cached contents; NULL = the context window),
-- and the long-context tier: when a request's input (all kinds) exceeds long_threshold tokens, the
-- whole request is priced at long_input / long_output / long_cache_read (cache writes scale with
-- the input price). NULL = no tier. Values for the shipped models are set by catalog.sql.
ALTER TABLE models
  ADD COLUMN IF NOT EXISTS context_window BIGINT NULL,
  ADD COLUMN IF NOT EXISTS expand_input BIGINT NULL,
  ADD COLUMN IF NOT EXISTS long_threshold BIGINT NULL,
  ADD COLUMN IF NOT EXISTS long_input BIGINT NULL,
  ADD COLUMN IF NOT EXISTS long_output BIGINT NULL,
  ADD COLUMN IF NOT EXISTS long_cache_read BIGINT NULL;

-- Requests of the hour a lease took (slots) for window slots_window and has not given back. A
-- process that has used or returned its slice sets it to 0; so the sum over a user's leases is an
-- upper bound of the requests counted in rate_counters that nobody has used yet.
ALTER TABLE leases
  ADD COLUMN IF NOT EXISTS slots INT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS slots_window INT UNSIGNED NOT NULL DEFAULT 0,
  ADD KEY IF NOT EXISTS ix_leases_user (user_id, grp);

-- A request found the hour's count used up while other processes still held unused slices: every
-- process polls this table and gives back the unused slices of (user_id, grp) at once; the refused
-- request asks again before it answers 429. Rows older than an hour are deleted as new ones come.
CREATE TABLE IF NOT EXISTS rate_recalls (
  seq         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id     BIGINT UNSIGNED NOT NULL,
  grp         VARCHAR(16) CHARACTER SET ascii NOT NULL,
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_recalls_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A top-up's idempotency reference (a payment id, a bank transfer's reference): the same reference
-- grants once.
ALTER TABLE topups ADD COLUMN IF NOT EXISTS ref VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ADD UNIQUE KEY IF NOT EXISTS uq_topups_ref (ref);

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

DELIMITER //

-- Grant a top-up as a new lot, once per reference: p_ref already used answers code 1 with the lot it
-- granted then (and grants nothing). One row: code (0 granted now, 1 granted before), topup_id,
-- credits, balance.
CREATE OR REPLACE PROCEDURE zg_topup(IN p_user BIGINT UNSIGNED, IN p_plan VARCHAR(16), IN p_usd_micros BIGINT,
                                     IN p_mult INT, IN p_ref VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin)
proc: BEGIN
  DECLARE v_bal BIGINT;
  DECLARE v_grant BIGINT;
  DECLARE v_id BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_old BIGINT;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  SET v_grant = p_usd_micros * p_mult;
  START TRANSACTION;
  SELECT balance INTO v_bal FROM users WHERE id = p_user FOR UPDATE;
  SELECT id, credits_granted INTO v_id, v_old FROM topups WHERE ref = p_ref;
  IF v_id IS NOT NULL THEN
    ROLLBACK;
    SELECT 1 AS code, v_id AS topup_id, v_old AS credits, v_bal AS balance;
    LEAVE proc;
  END IF;
  INSERT INTO topups (user_id, plan, usd_micros, multiplier, credits_granted, credits_remaining, ref)
    VALUES (p_user, p_plan, p_usd_micros, p_mult, v_grant, GREATEST(0, v_grant + LEAST(v_bal, 0)), p_ref);
  UPDATE users SET balance = balance + v_grant WHERE id = p_user;
  COMMIT;
  SELECT 0 AS code, LAST_INSERT_ID() AS topup_id, v_grant AS credits, v_bal + v_grant AS balance;
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

-- Admit a request the strict way (see schema.sql). Refused requests (429, 402) no longer use up the
-- hour's count, and a 429 while other processes hold unused slices of the hour answers 4290 after
-- recalling them (the caller asks again).
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

-- Take or extend a lease (see migration 2), once per p_op (a repeated operation answers its first
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
  SELECT k.id, k.user_id INTO v_key, v_user
    FROM api_keys k JOIN users u ON u.id = k.user_id
   WHERE k.key_hash = p_hash AND k.status = 'active' AND u.status = 'active';
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

-- Give back what a lease still reserves (see migration 2). A single lease's row also forgets its
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

DELIMITER ;
