-- What the live collector (core/collector.py) appends, in the raw schema: books and trades as
-- received, before a daily run turns a day of them into raw partitions. Rows are appended in
-- small transactional batches, skipping any (symbol, ts) / trade id already stored, so a restart
-- or a retried batch never duplicates.
CREATE TABLE IF NOT EXISTS collected_l2_snapshots AS SELECT * FROM raw_l2_snapshots WITH NO DATA;
CREATE TABLE IF NOT EXISTS collected_trades AS SELECT * FROM raw_trades WITH NO DATA;
