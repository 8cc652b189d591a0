"""Labels: the methods (CUSUM events, triple barrier, weights) and the labelling of one partition."""
