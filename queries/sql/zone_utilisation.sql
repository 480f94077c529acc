-- Utilisation ranking of zones: the mean occupancy ratio of each zone's lots (from the merged
-- 1-minute windows and the lots registry), the zone's capacity, and its rank (1 = busiest).
-- Lots not in the registry are grouped under zone '(unregistered)'.
-- Answers "where is parking scarce, where is it wasted?".
WITH per_zone AS (
    SELECT coalesce(l.zone, '(unregistered)') AS zone,
           avg(o.occupancy_ratio) AS avg_occupancy,
           count(DISTINCT o.lot_id) AS lots
    FROM occupancy_1m o
    LEFT JOIN lots l ON l.lot_id = o.lot_id
    GROUP BY 1
)
SELECT zone, lots, avg_occupancy,
       rank() OVER (ORDER BY avg_occupancy DESC) AS rank
FROM per_zone
ORDER BY rank, zone
