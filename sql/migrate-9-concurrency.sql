-- zenn-gateway schema, migration 9 (applied by `zenn-admin db migrate` after migration 8): the
-- per-user cap on requests in flight ([limits] concurrent_per_user), across processes and web
-- nodes. Each program process holds slots of a user's allowance in conc_slots (one row per process
-- and user, renewed while held); conc_users is the row a process locks to change a user's slots.

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

DELIMITER //

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
