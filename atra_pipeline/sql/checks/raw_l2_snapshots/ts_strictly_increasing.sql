-- Offending rows: timestamps that occur more than once for the symbol. Stored rows have no
-- order of their own, so "strictly increasing in time order" means "no repeated timestamp".
SELECT ts, count(*) AS n_rows
FROM {target}
GROUP BY ts
HAVING count(*) > 1
ORDER BY ts
