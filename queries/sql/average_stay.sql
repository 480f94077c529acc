-- Average stay per lot: the mean time between a space becoming occupied and becoming free again,
-- over completed stays (a space still occupied at the end of the data is not counted).
-- Repeated readings of the same state are not transitions. (`readings` holds each reading once:
-- the lake is deduplicated on lot_id, space_id, ts, so no DISTINCT is needed here.)
-- Answers "how long do people park here?".
WITH t AS (
    SELECT lot_id, space_id, ts, occupied,
           lag(occupied) OVER (PARTITION BY lot_id, space_id ORDER BY ts) AS prev
    FROM readings
), changes AS (
    SELECT lot_id, space_id, ts, occupied
    FROM t
    WHERE (prev IS NULL AND occupied) OR prev <> occupied
), stays AS (
    SELECT lot_id, occupied, ts AS arrived,
           lead(ts) OVER (PARTITION BY lot_id, space_id ORDER BY ts) AS departed
    FROM changes
)
SELECT
    lot_id,
    count(*) AS stays,
    avg(CAST(departed AS BIGINT) - CAST(arrived AS BIGINT)) / 60e6 AS avg_stay_minutes
FROM stays
WHERE occupied AND departed IS NOT NULL
GROUP BY lot_id
ORDER BY lot_id
