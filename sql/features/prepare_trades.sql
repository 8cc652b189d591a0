-- Cumulative trade flow of the symbol over [$load_start, $end) (up to $cutoff), and its state as
-- of each decision time t and t - w: window sums are differences, as for the book.
-- Trades sharing a timestamp are summed first: an as-of lookup must land on one row per time.
CREATE OR REPLACE TEMP TABLE fx_trades AS
WITH per_ts AS (
    SELECT ts, sum(amount) AS vol, sum(CASE WHEN side = 'buy' THEN amount ELSE 0 END) AS buy,
           sum(price * amount) AS notional
    FROM raw_trades
    WHERE symbol = $symbol AND ts >= $load_start AND ts < $end AND ts <= $cutoff
    GROUP BY ts
)
SELECT ts, sum(vol) OVER c AS c_vol, sum(buy) OVER c AS c_buy, sum(notional) OVER c AS c_notional
FROM per_ts
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
