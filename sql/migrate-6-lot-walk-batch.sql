-- zenn-gateway schema, migration 6 (applied by `zenn-admin db migrate` after migration 5): the lot
-- walk carries the current lot from one settlement of a batch to the next (zg_lot_walk, zg_lot_put),
-- so a batch writes each lot row once; zg_consume_lots and zg_flush both walk through it.

DELIMITER //
-- The lot walk, the one place that consumes lots: take p_credits from p_user's lots, oldest first,
-- carrying the current lot between calls in (p_lot, p_rem, p_mult, p_taken) so that a batch of
-- settlements touches each lot row once. Credits taken from the current lot are written (zg_lot_put)
-- when the walk moves past it, and by the caller when it is done. Start a user's walk with p_lot = 0,
-- p_rem = 0, p_taken = 0. p_cash: the money consumed in micro-dollars (each lot piece's credits
-- divided by its multiplier, rounded). Credits beyond the last lot are taken from no lot (overdraft).
CREATE OR REPLACE PROCEDURE zg_lot_walk(IN p_user BIGINT UNSIGNED, IN p_credits BIGINT, INOUT p_lot BIGINT UNSIGNED,
                                       INOUT p_rem BIGINT, INOUT p_mult INT, INOUT p_taken BIGINT, OUT p_cash BIGINT)
BEGIN
  DECLARE v_left BIGINT DEFAULT p_credits;
  DECLARE v_take BIGINT;
  DECLARE v_found INT DEFAULT 1;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_found = 0;
  SET p_cash = 0;
  lots: WHILE v_left > 0 DO
    IF p_rem <= 0 THEN
      CALL zg_lot_put(p_lot, p_taken);
      SET p_taken = 0, p_rem = 0, v_found = 1;
      SELECT id, credits_remaining, multiplier INTO p_lot, p_rem, p_mult FROM topups
       WHERE user_id = p_user AND credits_remaining > 0 AND id > p_lot ORDER BY id LIMIT 1 FOR UPDATE;
      IF v_found = 0 THEN SET p_rem = 0; LEAVE lots; END IF;
    END IF;
    SET v_take = LEAST(v_left, p_rem);
    SET p_rem = p_rem - v_take, p_taken = p_taken + v_take, v_left = v_left - v_take;
    SET p_cash = p_cash + (v_take + p_mult DIV 2) DIV p_mult;
  END WHILE;
END //

-- Write what a lot walk took from lot p_lot.
CREATE OR REPLACE PROCEDURE zg_lot_put(IN p_lot BIGINT UNSIGNED, IN p_taken BIGINT)
BEGIN
  IF p_taken > 0 THEN
    UPDATE topups SET credits_remaining = credits_remaining - p_taken WHERE id = p_lot;
  END IF;
END //

-- Consume p_credits of p_user's lots in one walk (zg_lot_walk); p_cash as there.
CREATE OR REPLACE PROCEDURE zg_consume_lots(IN p_user BIGINT UNSIGNED, IN p_credits BIGINT, OUT p_cash BIGINT)
BEGIN
  DECLARE v_lot BIGINT UNSIGNED DEFAULT 0;
  DECLARE v_rem BIGINT DEFAULT 0;
  DECLARE v_mult INT DEFAULT 1;
  DECLARE v_taken BIGINT DEFAULT 0;
  CALL zg_lot_walk(p_user, p_credits, v_lot, v_rem, v_mult, v_taken, p_cash);
  CALL zg_lot_put(v_lot, v_taken);
END //

-- Write a batch of finished lease requests in one transaction (billing mode "lease"). p_rows is a
-- JSON array of arrays: [request_id, user_id, key_id, group, surface, model, provider, hold, status,
-- end_reason, credits, released, input, output, cache_read, cache_write_5m, cache_write_1h,
-- reasoning, units, estimated, upstream_status, ttfb_ms, duration_ms]; "released" is the part of
-- the credits that came out of p_owner's lease on (key_id, group). Each row's lots are consumed by
-- the one lot walk (zg_lot_walk), carried from row to row of a user so each lot row is written
-- once. A request id already written fails the whole
-- batch (duplicate key) so the caller can fall back to zg_settle_direct per row.
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
  DECLARE v_lot_rem, v_lot_taken BIGINT DEFAULT 0;
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
        CALL zg_lot_put(v_lot, v_lot_taken);
      END IF;
      SET v_cur_user = v_user, v_sum = 0, v_sum_rel = 0, v_lot = 0, v_lot_rem = 0, v_lot_taken = 0;
      SELECT id INTO v_lock FROM users WHERE id = v_user FOR UPDATE;
    END IF;
    SET v_sum = v_sum + v_credits, v_sum_rel = v_sum_rel + v_rel;
    CALL zg_lot_walk(v_user, v_credits, v_lot, v_lot_rem, v_mult, v_lot_taken, v_cash);
    SET v_done = 0;
    INSERT INTO usage_log (request_id, user_id, key_id, surface, model, provider, status, end_reason,
           hold_credits, credits, cash_micros, input_tokens, output_tokens, cache_read_tokens,
           cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, units, estimated, upstream_status,
           ttfb_ms, duration_ms, settled_at)
    VALUES (v_rid, v_user, v_key, v_surface, v_model, v_provider, v_status, v_reason, v_hold, v_credits,
            v_cash, v_in, v_out, v_cr, v_cw5, v_cw1h, v_rsn, v_units, v_est, v_ups, v_ttfb, v_dur, NOW(3));
    SET v_n = v_n + 1;
  END LOOP;
  CLOSE cur;
  IF v_cur_user <> 0 THEN
    UPDATE users SET balance = balance - v_sum, held = held - v_sum_rel WHERE id = v_cur_user;
    CALL zg_lot_put(v_lot, v_lot_taken);
  END IF;
  UPDATE api_keys k JOIN (SELECT key_id, SUM(credits) c, SUM(rel) r FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
           key_id BIGINT UNSIGNED PATH '$[2]', credits BIGINT PATH '$[10]', rel BIGINT PATH '$[11]')) j
         GROUP BY key_id) t ON t.key_id = k.id
     SET k.spent = k.spent + t.c, k.held = k.held - t.r, k.last_used_at = NOW(3);
  UPDATE leases l JOIN (SELECT key_id, grp, SUM(rel) r FROM JSON_TABLE(p_rows, '$[*]' COLUMNS (
           key_id BIGINT UNSIGNED PATH '$[2]', grp VARCHAR(16) PATH '$[3]', rel BIGINT PATH '$[11]')) j
         GROUP BY key_id, grp) t ON l.owner = p_owner AND l.key_id = t.key_id AND l.grp = t.grp
     SET l.credits = l.credits - t.r, l.renewed_at = NOW(3);
  COMMIT;
  SELECT v_n AS n;
END //

DELIMITER ;
