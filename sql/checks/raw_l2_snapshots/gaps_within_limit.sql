-- Offending rows: stretches longer than $max_gap_s seconds without a snapshot; with $edges, also
-- the stretch from the window's start to the first row and from the last row to the window's end.
WITH times AS (
    SELECT $start::TIMESTAMP AS ts
    UNION ALL SELECT ts FROM {target}
    UNION ALL SELECT $end::TIMESTAMP
), steps AS (
    SELECT lag(ts) OVER (ORDER BY ts) AS gap_from, ts AS gap_to FROM times
)
SELECT gap_from, gap_to, epoch(gap_to - gap_from) AS gap_s
FROM steps
WHERE gap_from IS NOT NULL AND epoch(gap_to - gap_from) > $max_gap_s
  AND ($edges OR (gap_from > $start::TIMESTAMP AND gap_to < $end::TIMESTAMP))
ORDER BY gap_s DESC
