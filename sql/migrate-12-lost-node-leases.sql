-- zenn-gateway schema, migration 12 (applied by `zenn-admin db migrate` after migration 11):
-- a settlement releases the part of a lease it used only while that lease still holds it, so a
-- node that comes back after its leases were released as a lost node's (another node did it after
-- [billing] lost_host_after) writes its journal without taking the credits off the holds twice.

DELIMITER //

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

DELIMITER ;
