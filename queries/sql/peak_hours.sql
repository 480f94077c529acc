-- Peak hours per lot: the hour of day (UTC) with the highest mean occupancy ratio, with that ratio.
-- Ties go to the earlier hour. Answers "when should enforcement or pricing focus on this lot?".
WITH hourly AS (
    SELECT lot_id, CAST(date_part('hour', window_start) AS INT) AS hour, avg(occupancy_ratio) AS avg_occupancy
    FROM occupancy_1m
    GROUP BY 1, 2
), ranked AS (
    SELECT lot_id, hour, avg_occupancy,
           row_number() OVER (PARTITION BY lot_id ORDER BY avg_occupancy DESC, hour) AS rank
    FROM hourly
)
SELECT lot_id, hour AS peak_hour, avg_occupancy
FROM ranked
WHERE rank = 1
ORDER BY lot_id
