-- The first problem (in file order) of a staged file: problem, column, row, detail, and how many
-- rows have that problem. The inner query (book_problems.sql or trade_problems.sql) gives _row, p.
SELECT p.problem, p.col, _row, p.detail, count(*) OVER (PARTITION BY p.problem) AS n_rows
FROM ({found}) AS found
WHERE p IS NOT NULL
ORDER BY _row
LIMIT 1
