-- Issue 15: a bad level is reported at its own column (an inf in ask_px_9 was reported as
-- ask_sz_0). The 1-based position of the first level of a side whose price and size are not both
-- finite numbers > 0, or not both absent; NULL when every level is well formed.
CREATE OR REPLACE MACRO book_side_first_bad_level(px, sz) AS
    list_position(list_transform(range(1, len(px) + 1), lambda i:
        NOT ((px[i] IS NULL) = (sz[i] IS NULL)
             AND (px[i] IS NULL OR (isfinite(px[i]) AND px[i] > 0 AND isfinite(sz[i]) AND sz[i] > 0)))), true);

-- The level rule is stated once, above: the sizes check (002's macro, replaced here) reads it.
CREATE OR REPLACE MACRO book_side_sizes_ok(px, sz) AS book_side_first_bad_level(px, sz) IS NULL;

-- The column at fault at bad level k of a side: its price when the price is the bad part, else its size.
CREATE OR REPLACE MACRO book_level_column(side, px, k) AS
    CASE WHEN px[k] IS NOT NULL AND NOT (isfinite(px[k]) AND px[k] > 0) THEN side || '_px_' || (k - 1)
         ELSE side || '_sz_' || (k - 1) END;
