-- One offending row when the partition's row count is outside [$min_rows, $max_rows].
SELECT n_rows, $min_rows AS min_rows, $max_rows AS max_rows
FROM (SELECT count(*) AS n_rows FROM {target})
WHERE n_rows < $min_rows OR n_rows > $max_rows
