-- Offending rows: stretches longer than $max_gap_s seconds without a snapshot; with $edges, also
-- the stretch from the window's start to the first row and from the last row to the window's end.
-- pos orders the window's start before a row at the same instant and its end after one.
WITH times AS (
    SELECT $start::TIMESTAMP AS ts, 0 AS pos
    UNION ALL SELECT ts, 1 FROM {target}
    UNION ALL SELECT $end::TIMESTAMP, 2
), steps AS (
    SELECT lag(ts) OVER w AS gap_from, ts AS gap_to, lag(pos) OVER w = 0 OR pos = 2 AS at_edge
    FROM times
    WINDOW w AS (ORDER BY ts, pos)
)
SELECT gap_from, gap_to, epoch(gap_to - gap_from) AS gap_s
FROM steps
WHERE gap_from IS NOT NULL AND epoch(gap_to - gap_from) > $max_gap_s AND ($edges OR NOT at_edge)
ORDER BY gap_s DESC
