-- Offending rows: a barrier touched before the event it labels.
SELECT ts, t1, barrier
FROM {target}
WHERE t1 < ts
ORDER BY ts
