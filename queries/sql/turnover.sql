-- Turnover: arrivals (free → occupied transitions) per space per day, for each lot and UTC day.
-- arrivals come from the 1-minute windows; spaces = the lot's capacity.
-- Answers "how many cars does one space serve a day?".
SELECT
    lot_id,
    CAST(window_start AS DATE) AS day,
    sum(arrivals) AS arrivals,
    max(capacity) AS spaces,
    CAST(sum(arrivals) AS DOUBLE) / max(capacity) AS arrivals_per_space
FROM occupancy_1m
GROUP BY 1, 2
ORDER BY 1, 2
