"""Numbers computed from finished runs: one run's curves and calibration (`runs`), paired differences
between two runs on the same traffic (`paired`), system irreproducibility over time, credit attribution and
the feedback-loop study, 95 % t-intervals, and what every reported number means (`definitions`)."""
