-- Offending rows: a label, side, outcome or barrier outside its set, or an outcome that does not
-- match its barrier.
SELECT ts, side, label, outcome, barrier
FROM {target}
WHERE label NOT IN (0, 1) OR side NOT IN (-1, 1) OR outcome NOT IN (-1, 0, 1)
   OR barrier NOT IN ('pt', 'sl', 'vertical')
   OR outcome <> CASE barrier WHEN 'pt' THEN 1 WHEN 'sl' THEN -1 ELSE 0 END
ORDER BY ts
