-- Calendar features of the decision time (UTC), also on the circle so 23:59 sits next to 00:00.
SELECT ts,
    hour(ts)::DOUBLE AS hour_of_day,
    isodow(ts)::DOUBLE AS day_of_week,
    sin(2 * pi() * (hour(ts) + minute(ts) / 60) / 24) AS hour_sin,
    cos(2 * pi() * (hour(ts) + minute(ts) / 60) / 24) AS hour_cos,
    sin(2 * pi() * (isodow(ts) - 1) / 7) AS dow_sin,
    cos(2 * pi() * (isodow(ts) - 1) / 7) AS dow_cos
FROM fx_grid
