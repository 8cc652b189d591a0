-- Issue 15 finding 6: per-day Binance capture files. A capture partition keeps the book its day
-- ended in, so that the next day's file, which holds no REST snapshot, continues it instead of
-- replaying every earlier file (core.binance_capture.BookState; written with the partition's rows,
-- in the same transaction, by core.raw_partition.write_raw). A table of its own, not
-- partition_settings: the state is data (the full depth as rebuilt, thousands of levels, and the capture
-- lines of the file that belong to the next day), read by one partition, never configuration a
-- model is registered with.
CREATE TABLE IF NOT EXISTS capture_book_state (
    symbol VARCHAR NOT NULL,
    day DATE NOT NULL,              -- the partition whose replay ended in this book
    market VARCHAR NOT NULL,        -- spot, usdm_futures or coinm_futures: only the same market continues it
    last_update_id BIGINT,          -- u of the day's last depth update, which the next file's first continues (NULL: none)
    state VARCHAR NOT NULL,         -- the BookState as JSON: book at the day's end, its update ids and time, carried lines
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (symbol, day)
);
