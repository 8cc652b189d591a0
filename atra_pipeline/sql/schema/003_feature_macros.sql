-- Order-flow contribution of one book level between two snapshots (Cont, Kukanov & Stoikov 2014):
--   e = 1{Pb >= Pb'} qb - 1{Pb <= Pb'} qb' - 1{Pa <= Pa'} qa + 1{Pa >= Pa'} qa'     (' = previous)
-- Positive when bids grow or move up, or asks shrink or move up. 0 for the first snapshot
-- (no previous one) and for a level missing in either snapshot.
CREATE OR REPLACE MACRO ofi_contribution(bid_px, bid_sz, p_bid_px, p_bid_sz, ask_px, ask_sz, p_ask_px, p_ask_sz) AS
    coalesce(CASE WHEN bid_px >= p_bid_px THEN bid_sz ELSE 0 END - CASE WHEN bid_px <= p_bid_px THEN p_bid_sz ELSE 0 END
             - CASE WHEN ask_px <= p_ask_px THEN ask_sz ELSE 0 END + CASE WHEN ask_px >= p_ask_px THEN p_ask_sz ELSE 0 END, 0);
