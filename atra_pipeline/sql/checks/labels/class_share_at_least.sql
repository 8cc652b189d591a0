-- Offending rows: a meta-label class (0 or 1) holding less than $min_share of the partition's
-- events, including a class that is absent or a partition without events.
WITH shares AS (
    SELECT c.label, count(t.label) AS events, count(t.label) / nullif(sum(count(t.label)) OVER (), 0) AS share
    FROM (VALUES (0), (1)) AS c(label)
    LEFT JOIN {target} AS t ON t.label = c.label
    GROUP BY c.label
)
SELECT label, events, coalesce(share, 0) AS share
FROM shares
WHERE coalesce(share, 0) < $min_share
ORDER BY label
