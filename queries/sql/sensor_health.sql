-- Sensor health: spaces whose sensor is silent (no reading in the hour before the newest reading
-- in the lake) or whose battery is low (latest reported battery below 15 %), with when each was
-- last seen. Relative to the data, not the clock, so it also works on historical lakes.
-- Answers "which sensors need a technician?".
WITH latest AS (
    SELECT lot_id, space_id, max(ts) AS last_seen,
           last_value(battery ORDER BY ts) AS battery
    FROM readings
    GROUP BY lot_id, space_id
), horizon AS (
    SELECT max(ts) - INTERVAL '1 hour' AS silent_before FROM readings
)
SELECT lot_id, space_id, last_seen, battery,
       last_seen < silent_before AS silent,
       coalesce(battery < 15, false) AS battery_low
FROM latest CROSS JOIN horizon
WHERE last_seen < silent_before OR battery < 15
ORDER BY lot_id, space_id
