-- Cumulative trade flow of the symbol over [$load_start, $end) (up to $cutoff), and its state as
-- of each decision time t and t - w: window sums are differences, as for the book.
-- Trades are summed into whole-second buckets first, labelled by the second that ends them
-- (a trade at 12:00:00.5 counts from 12:00:01 on). Exact, not an approximation: every time the
-- state is looked up at (t and t - w, t on the decision grid) is a whole second, and a trade
-- counts at x when its ts <= x, i.e. when its bucket's label <= x. It also makes one row per
-- time, which an as-of lookup needs, and ~20x fewer rows to sum over.
CREATE OR REPLACE TEMP TABLE fx_trade_seconds AS
SELECT time_bucket(INTERVAL 1 SECOND, ts - to_microseconds(1)) + INTERVAL 1 SECOND AS ts,
       sum(amount) AS vol, sum(CASE WHEN side = 'buy' THEN amount ELSE 0 END) AS buy,
       sum(price * amount) AS notional
FROM raw_trades
WHERE symbol = $symbol AND ts >= $load_start AND ts < $end AND ts <= $cutoff
GROUP BY 1;

CREATE OR REPLACE TEMP TABLE fx_trades AS
SELECT ts, vol, sum(vol) OVER c AS c_vol, sum(buy) OVER c AS c_buy, sum(notional) OVER c AS c_notional
FROM fx_trade_seconds
WINDOW c AS (ORDER BY ts ROWS UNBOUNDED PRECEDING);

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
