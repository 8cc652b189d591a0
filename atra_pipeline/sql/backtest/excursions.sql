-- Maximum adverse and favourable excursion of each trade in bt_trades: the worst and best
-- side-signed log return of the mid against the entry fill over [entry fill, exit fill].
SELECT t.trade, min(t.side * ln(m.mid / t.entry_px)) AS mae, max(t.side * ln(m.mid / t.entry_px)) AS mfe
FROM bt_trades AS t
JOIN (SELECT symbol, ts, (bid_px_0 + ask_px_0) / 2 AS mid FROM raw_l2_snapshots
      WHERE symbol IN (SELECT DISTINCT symbol FROM bt_trades)) AS m
  ON m.symbol = t.symbol AND m.ts BETWEEN t.entry_ts AND t.exit_ts
GROUP BY t.trade
