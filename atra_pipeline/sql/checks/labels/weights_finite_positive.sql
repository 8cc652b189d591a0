-- Offending rows: a sample weight, uniqueness or target that is not a finite number > 0.
SELECT ts, weight, uniqueness, target
FROM {target}
WHERE NOT (isfinite(weight) AND weight > 0 AND isfinite(uniqueness) AND uniqueness > 0
           AND isfinite(target) AND target > 0)
ORDER BY ts
