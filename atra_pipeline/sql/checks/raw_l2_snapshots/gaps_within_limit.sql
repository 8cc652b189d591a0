-- Offending rows: stretches longer than $max_gap_s seconds without a snapshot, the day's edges
-- included. With $edges (a full day expected) the edges are the window's start and end; without
-- (a partial day) they are the span of the partition's data, book and trades, so a book that
-- stops while trades go on leaves a hole at the end like any other.
-- pos orders an edge at the start before a row at the same instant and an edge at the end after one.
WITH span AS (
    SELECT CASE WHEN $edges THEN $start::TIMESTAMP
                ELSE least((SELECT min(ts) FROM {target}), (SELECT min(ts) FROM {trades})) END AS first_ts,
           CASE WHEN $edges THEN $end::TIMESTAMP
                ELSE greatest((SELECT max(ts) FROM {target}), (SELECT max(ts) FROM {trades})) END AS last_ts
), times AS (
    SELECT first_ts AS ts, 0 AS pos FROM span
    UNION ALL SELECT ts, 1 FROM {target}
    UNION ALL SELECT last_ts, 2 FROM span
), steps AS (
    SELECT lag(ts) OVER w AS gap_from, ts AS gap_to
    FROM times
    WINDOW w AS (ORDER BY ts, pos)
)
SELECT gap_from, gap_to, epoch(gap_to - gap_from) AS gap_s
FROM steps
WHERE gap_from IS NOT NULL AND epoch(gap_to - gap_from) > $max_gap_s
ORDER BY gap_s DESC
