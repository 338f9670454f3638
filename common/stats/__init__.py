"""Statistics, one home for the gate (harness/gate) and the reports (reports/): nothing else of ours is imported.

- `intervals`: medians over processes or runs with distribution-free order-statistic intervals and their exact
  levels, the one definition of a row's percentiles, robust CoV, bimodality;
- `accuracy`: accuracy from a confusion matrix, its interval, per-image correctness bits, McNemar's exact test;
- `changepoint`: change points in a series of runs as Apache Otava finds them, isolated outliers;
- `noise`: run-to-run noise from same-config reruns (A/A), its t-corrected bound and the MDE at 90% power.

The unit is always a process or a run, never the samples of one process (they share one machine state).
"""
