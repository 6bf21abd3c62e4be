-- zenn-gateway schema, migration 8 (applied by `zenn-admin db migrate` after migration 7): card
-- top-ups. Checkouts bound to the payment processor's sessions, each processor event applied once,
-- refunds, and a receipt for every granted top-up (those granted before get theirs here, numbered
-- in order within their year). zg_topup takes the receipt prefix; the grant itself moves into
-- zg_lot_grant, shared with the card path.

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

-- every top-up granted before receipts existed gets one, numbered in order within its year
INSERT INTO receipts (number, year, seq, topup_id, user_id, issued_at, plan, multiplier, usd_micros, credits,
                      currency, method, payment_ref)
  SELECT CONCAT('ZG-', x.y, '-', IF(x.n < 1000000, LPAD(x.n, 6, '0'), x.n)), x.y, x.n, x.id, x.user_id, x.created_at,
         x.plan, x.multiplier, x.usd_micros, x.credits_granted, 'usd', 'manual', COALESCE(x.ref, CONCAT('lot-', x.id))
    FROM (SELECT t.*, YEAR(t.created_at) AS y, ROW_NUMBER() OVER (PARTITION BY YEAR(t.created_at) ORDER BY t.id) AS n
            FROM topups t) x
   WHERE NOT EXISTS (SELECT 1 FROM receipts r WHERE r.topup_id = x.id);
INSERT INTO receipt_seq (year, last) SELECT year, MAX(seq) FROM receipts GROUP BY year
  ON DUPLICATE KEY UPDATE last = GREATEST(last, VALUES(last));

DELIMITER //

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

DELIMITER ;

INSERT IGNORE INTO schema_version (version) VALUES (8);
