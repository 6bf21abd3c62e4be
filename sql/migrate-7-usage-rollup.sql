-- zenn-gateway schema, migration 7 (applied by `zenn-admin db migrate` after migration 6): usage
-- analytics. A rollup per user, UTC day, key, model and surface kept by the settlement transactions
-- themselves; what each lot paid for, per day; retention of raw rows. The backfill rebuilds every
-- user's rollup from usage_log under the user's row lock, so it is exact with the gateway running;
-- lot pieces are recorded from the day after the migration on.

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
INSERT IGNORE INTO usage_state VALUES (1, '1000-01-01', UTC_DATE() + INTERVAL 1 DAY);

DELIMITER //

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
         ttfb_ms = p_ttfb, duration_ms = p_duration, settled_at = NOW(3)
   WHERE request_id = p_request_id;
  CALL zg_rollup(JSON_ARRAY(JSON_ARRAY(p_request_id)));
  COMMIT;
  SELECT 0 AS code, v_cash AS cash_micros;
END //

-- Write one finished request that was admitted under a lease and never had a pending row (a dead
-- process's journal, or a batch that zg_flush refused). Idempotent per request id: a request already
-- in usage_log is left alone (code 1). Debits balance, key and lots; p_released credits of it came
-- out of p_owner's lease on (p_key, p_group) and leave the holds. One row: code, cash_micros.
CREATE OR REPLACE PROCEDURE zg_settle_direct(
  IN p_owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin, IN p_group VARCHAR(16) CHARACTER SET ascii,
  IN p_released BIGINT, IN p_request_id VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin, IN p_user BIGINT UNSIGNED,
  IN p_key BIGINT UNSIGNED, IN p_surface VARCHAR(16) CHARACTER SET ascii, IN p_model VARCHAR(64) CHARACTER SET ascii,
  IN p_provider VARCHAR(32) CHARACTER SET ascii, IN p_hold BIGINT, IN p_status VARCHAR(16) CHARACTER SET ascii,
  IN p_end_reason VARCHAR(24) CHARACTER SET ascii, IN p_credits BIGINT,
  IN p_in BIGINT, IN p_out BIGINT, IN p_cr BIGINT, IN p_cw5 BIGINT, IN p_cw1h BIGINT, IN p_reason BIGINT,
  IN p_units INT, IN p_estimated TINYINT, IN p_upstream_status INT, IN p_ttfb INT, IN p_duration INT)
proc: BEGIN
  DECLARE v_cash BIGINT DEFAULT 0;
  DECLARE v_now DATETIME(3) DEFAULT NOW(3);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  INSERT IGNORE INTO usage_log (request_id, user_id, key_id, surface, model, provider, status, end_reason,
         hold_credits, credits, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens,
         cache_write_1h_tokens, reasoning_tokens, units, estimated, upstream_status, ttfb_ms, duration_ms,
         created_at, settled_at)
  VALUES (p_request_id, p_user, p_key, p_surface, p_model, p_provider, p_status, p_end_reason, p_hold,
          p_credits, p_in, p_out, p_cr, p_cw5, p_cw1h, p_reason, p_units, p_estimated, p_upstream_status,
          p_ttfb, p_duration, v_now, v_now);
  IF ROW_COUNT() = 0 THEN
    ROLLBACK;
    SELECT 1 AS code, 0 AS cash_micros;
    LEAVE proc;
  END IF;
  UPDATE users SET balance = balance - p_credits, held = held - p_released WHERE id = p_user;
  UPDATE api_keys SET spent = spent + p_credits, held = held - p_released WHERE id = p_key;
  IF p_released <> 0 THEN
    UPDATE leases SET credits = credits - p_released WHERE owner = p_owner AND key_id = p_key AND grp = p_group;
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
-- reasoning, units, estimated, upstream_status, ttfb_ms, duration_ms]; "released" is the part of
-- the credits that came out of p_owner's lease on (key_id, group). Each row's lots are consumed by
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
  DECLARE v_units, v_est, v_ups, v_ttfb, v_dur INT;
  DECLARE cur CURSOR FOR
    SELECT rid, user_id, key_id, surface, model, provider, hold, status, end_reason, credits, rel,
           i, o, cr, cw5, cw1h, rsn, units, est, ups, ttfb, dur
      FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
             seq FOR ORDINALITY,
             rid VARCHAR(40) PATH '$[0]', user_id BIGINT UNSIGNED PATH '$[1]', key_id BIGINT UNSIGNED PATH '$[2]',
             surface VARCHAR(16) PATH '$[4]', model VARCHAR(64) PATH '$[5]', provider VARCHAR(32) PATH '$[6]',
             hold BIGINT PATH '$[7]', status VARCHAR(16) PATH '$[8]', end_reason VARCHAR(24) PATH '$[9]',
             credits BIGINT PATH '$[10]', rel BIGINT PATH '$[11]', i BIGINT PATH '$[12]', o BIGINT PATH '$[13]', cr BIGINT PATH '$[14]',
             cw5 BIGINT PATH '$[15]', cw1h BIGINT PATH '$[16]', rsn BIGINT PATH '$[17]', units INT PATH '$[18]',
             est INT PATH '$[19]', ups INT PATH '$[20]', ttfb INT PATH '$[21]', dur INT PATH '$[22]')) j
     ORDER BY user_id, seq;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;

  START TRANSACTION;
  -- users one by one in id order (each locked before its lots and keys: the order every money
  -- transaction follows), then keys and leases in one statement each
  OPEN cur;
  rows_: LOOP
    FETCH cur INTO v_rid, v_user, v_key, v_surface, v_model, v_provider, v_hold, v_status, v_reason, v_credits,
                   v_rel, v_in, v_out, v_cr, v_cw5, v_cw1h, v_rsn, v_units, v_est, v_ups, v_ttfb, v_dur;
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
           ttfb_ms, duration_ms, created_at, settled_at)
    VALUES (v_rid, v_user, v_key, v_surface, v_model, v_provider, v_status, v_reason, v_hold, v_credits,
            v_cash, v_in, v_out, v_cr, v_cw5, v_cw1h, v_rsn, v_units, v_est, v_ups, v_ttfb, v_dur, v_now, v_now);
    SET v_n = v_n + 1;
  END LOOP;
  CLOSE cur;
  IF v_cur_user <> 0 THEN
    UPDATE users SET balance = balance - v_sum, held = held - v_sum_rel WHERE id = v_cur_user;
    CALL zg_lot_put(v_cur_user, DATE(v_now), v_lot, v_lot_taken, v_lot_cash);
  END IF;
  UPDATE api_keys k JOIN (SELECT key_id, SUM(credits) c, SUM(rel) r FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
           key_id BIGINT UNSIGNED PATH '$[2]', credits BIGINT PATH '$[10]', rel BIGINT PATH '$[11]')) j
         GROUP BY key_id) t ON t.key_id = k.id
     SET k.spent = k.spent + t.c, k.held = k.held - t.r, k.last_used_at = NOW(3);
  UPDATE leases l JOIN (SELECT key_id, grp, SUM(rel) r FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
           key_id BIGINT UNSIGNED PATH '$[2]', grp VARCHAR(16) PATH '$[3]', rel BIGINT PATH '$[11]')) j
         GROUP BY key_id, grp) t ON l.owner = p_owner AND l.key_id = t.key_id AND l.grp = t.grp
     SET l.credits = l.credits - t.r, l.renewed_at = NOW(3);
  CALL zg_rollup(p_rows);
  COMMIT;
  SELECT v_n AS n;
END //

-- the backfill: every user's rollup from the raw rows
BEGIN NOT ATOMIC
  FOR u IN (SELECT id FROM users ORDER BY id) DO
    CALL zg_rollup_rebuild(u.id);
  END FOR;
END //

DELIMITER ;
