"""The exact §4.1 occupancy windows as DuckDB SQL: the independent reference that
bench-vs-duckdb.sh times against fjord's batch views and the cluster test compares served windows
with. Reads a relation `readings(lot_id, space_id, t, occupied)` with `t` in epoch ms.

A space holds the value of its latest reading (free before the first); (space, ts) pairs count
once; windows of every lot from its first reading's window up to the high-water mark `hwm_sql`
(a scalar SQL expression: a constant, or a subquery over `r`, the deduplicated readings, such as
`(SELECT (max(t) - 65000) // 600000 * 600000 FROM r)`).
"""


def windows(size, hwm_sql):
    return f"""
WITH r AS (SELECT lot_id, space_id, t, bool_or(occupied) AS o FROM readings GROUP BY ALL),
hw AS (SELECT CAST(({hwm_sql}) AS BIGINT) AS hwm),
seg AS (
  SELECT lot_id, space_id, t AS t0, least(coalesce(lead(t) OVER w, hwm), hwm) AS t1, o,
         coalesce(lag(o) OVER w, false) AS prev
  FROM r, hw WINDOW w AS (PARTITION BY lot_id, space_id ORDER BY t)),
occ AS (
  SELECT lot_id, k, sum(least(t1, (k + 1) * {size}) - greatest(t0, k * {size})) AS ms,
         count(*) FILTER (WHERE t1 >= (k + 1) * {size}) AS at_end
  FROM (SELECT lot_id, t0, t1, unnest(generate_series(t0 // {size}, (t1 - 1) // {size})) AS k
        FROM seg WHERE o AND t0 < t1)
  GROUP BY ALL),
ev AS (
  SELECT lot_id, t0 // {size} AS k, count(*) AS readings,
         count(*) FILTER (WHERE o AND NOT prev) AS arrivals,
         count(*) FILTER (WHERE prev AND NOT o) AS departures
  FROM seg, hw WHERE t0 < hwm GROUP BY ALL),
grid AS (
  SELECT lot_id, unnest(generate_series(min(t) // {size}, (any_value(hwm) // {size}) - 1)) AS k
  FROM r, hw GROUP BY lot_id)
SELECT g.lot_id, g.k * {size} AS window_start, coalesce(occ.ms, 0) / {size} AS occupied_avg,
       coalesce(occ.at_end, 0) AS occupied_end, coalesce(arrivals, 0) AS arrivals,
       coalesce(departures, 0) AS departures, coalesce(readings, 0) AS readings
FROM grid g LEFT JOIN occ USING (lot_id, k) LEFT JOIN ev USING (lot_id, k)
"""
