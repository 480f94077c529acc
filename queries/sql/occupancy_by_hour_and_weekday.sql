-- Occupancy by hour of day and weekday: for each lot, the mean occupancy ratio of every
-- (weekday, hour) slot, from the merged 1-minute windows. weekday: 0 = Sunday … 6 = Saturday (UTC).
-- Answers "when is this lot busy?" — the heat map planners start from.
SELECT
    lot_id,
    CAST(date_part('dow', window_start) AS INT) AS weekday,
    CAST(date_part('hour', window_start) AS INT) AS hour,
    avg(occupancy_ratio) AS avg_occupancy
FROM occupancy_1m
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
