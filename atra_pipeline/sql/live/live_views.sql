-- The raw tables as the live path sees them: the stored raw partitions plus the collected rows
-- that no raw partition holds yet. Temporary views shadow the tables of the same name; {db}
-- names the database so the views read the real tables, not themselves.
CREATE OR REPLACE TEMP VIEW raw_l2_snapshots AS
SELECT * FROM "{db}".main.raw_l2_snapshots
UNION ALL BY NAME
SELECT c.* FROM "{db}".main.collected_l2_snapshots AS c
ANTI JOIN "{db}".main.raw_l2_snapshots AS r ON r.symbol = c.symbol AND r.ts = c.ts;
CREATE OR REPLACE TEMP VIEW raw_trades AS
SELECT * FROM "{db}".main.raw_trades
UNION ALL BY NAME
SELECT c.* FROM "{db}".main.collected_trades AS c
ANTI JOIN "{db}".main.raw_trades AS r ON r.exchange = c.exchange AND r.symbol = c.symbol AND r.trade_id = c.trade_id
