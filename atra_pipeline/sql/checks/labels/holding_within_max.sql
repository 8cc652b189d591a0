-- Offending rows: a label whose path runs longer than the vertical barrier allows.
SELECT ts, t1, epoch(t1 - ts) AS holding_s
FROM {target}
WHERE t1 - ts > to_seconds($max_holding_s)
ORDER BY ts
