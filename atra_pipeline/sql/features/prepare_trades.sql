-- Cumulative trade flow of the symbol over [$load_start, $end) (up to $cutoff), and its state as
-- of each decision time t and t - w: window sums are differences, as for the book.
-- Trades are summed into buckets of g seconds first, g the largest divisor of the decision step
-- and of every look-back (10 s at step 60 s, 1 s at step 1 s), each bucket labelled by the time
-- that ends it (at g = 1 s a trade at 12:00:00.5 counts from 12:00:01 on). Exact, not an
-- approximation: every time the state is looked up at (t and t - w, t on the decision grid) is a
-- multiple of g, and a trade counts at x when its ts <= x, i.e. when its bucket's label <= x. It
-- also makes one row per time, which an as-of lookup needs, and far fewer rows to sum over.
-- Bucket keys are integers (ceil of epoch microseconds / g): grouping on an integer is ~3x faster
-- than on time_bucket's timestamp arithmetic. The running sums are a streaming window over the
-- buckets sorted once (see prepare_book.sql); c_vol fails the build if they arrive out of order.
-- sum(... ORDER BY ts, trade_id): a bucket's trades are added in one order whatever the thread
-- that read them, so identical runs give identical bits (unordered, they differed by ~1e-12).
-- fsum: a streaming running fsum is correctly rounded, so a window's difference of two running
-- sums is as precise as a double running sum allows, at no measurable cost.
CREATE OR REPLACE TEMP TABLE fx_trades AS
WITH bucket AS (
    SELECT list_reduce(list_concat([$step_s], $lookbacks_s), lambda a, b: gcd(a, b)) * 1000000 AS us
), buckets AS (
    SELECT (epoch_us(ts) + bucket.us - 1) // bucket.us * bucket.us AS s,
           sum(amount ORDER BY ts, trade_id) AS vol,
           sum(CASE WHEN side = 'buy' THEN amount ELSE 0 END ORDER BY ts, trade_id) AS buy,
           sum(price * amount ORDER BY ts, trade_id) AS notional
    FROM raw_trades, bucket
    WHERE symbol = $symbol AND ts >= $load_start AND ts < $end AND ts <= $cutoff
    GROUP BY 1
    ORDER BY 1
)
SELECT make_timestamp(s) AS ts, vol,
    CASE WHEN lag(s) OVER w < s OR lag(s) OVER w IS NULL THEN fsum(vol) OVER c
         ELSE error('prepare_trades.sql: trade buckets reached the running sums out of order') END AS c_vol,
    fsum(buy) OVER c AS c_buy, fsum(notional) OVER c AS c_notional
FROM buckets
WINDOW w AS (), c AS (ROWS UNBOUNDED PRECEDING);

-- Trades are sparse: a window with no trade has volume 0, not NULL, so the state before the
-- first trade is 0 once the book shows the data reach back that far.
CREATE OR REPLACE TEMP TABLE fx_trade_state AS
WITH probes AS (
    SELECT ts, lookback_s, state_ts, ts - to_seconds(lookback_s) AS at FROM fx_state
)
SELECT p.ts, p.lookback_s,
    CASE WHEN p.state_ts IS NOT NULL THEN coalesce(t.c_vol, 0) END AS c_vol,
    CASE WHEN p.state_ts IS NOT NULL THEN coalesce(t.c_buy, 0) END AS c_buy,
    CASE WHEN p.state_ts IS NOT NULL THEN coalesce(t.c_notional, 0) END AS c_notional
FROM probes AS p ASOF LEFT JOIN fx_trades AS t ON p.at >= t.ts;
