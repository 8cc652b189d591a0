-- Issue 15: a bad level is reported at its own column (an inf in ask_px_9 was reported as
-- ask_sz_0). The 1-based position of the first level of a side whose price and size are not both
-- finite numbers > 0, or not both absent; NULL when every level is well formed (the rule of
-- book_side_sizes_ok, level by level).
CREATE OR REPLACE MACRO book_side_first_bad_level(px, sz) AS
    list_position(list_transform(range(1, len(px) + 1), lambda i:
        NOT ((px[i] IS NULL) = (sz[i] IS NULL)
             AND (px[i] IS NULL OR (isfinite(px[i]) AND px[i] > 0 AND isfinite(sz[i]) AND sz[i] > 0)))), true);

-- The column of that level at fault: its price when the price is the bad part, else its size.
CREATE OR REPLACE MACRO book_bad_level_column(side, px, sz) AS
    CASE WHEN book_side_first_bad_level(px, sz) IS NULL THEN NULL
         WHEN px[book_side_first_bad_level(px, sz)] IS NOT NULL
              AND NOT (isfinite(px[book_side_first_bad_level(px, sz)]) AND px[book_side_first_bad_level(px, sz)] > 0)
              THEN side || '_px_' || (book_side_first_bad_level(px, sz) - 1)
         ELSE side || '_sz_' || (book_side_first_bad_level(px, sz) - 1) END;
