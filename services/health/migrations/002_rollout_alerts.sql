-- Open "rollout paused" alerts are found by the rollout they name (metadata.rollout_id) when
-- the rollout runs again or ends; every rollout fact asks, so it must be an index lookup.
CREATE INDEX idx_alerts_open_rollout ON alerts ((metadata ->> 'rollout_id'))
    WHERE alert_type = 'rollout_paused' AND resolved_at IS NULL;
