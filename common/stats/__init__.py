"""Statistics, one home for the gate (harness/gate) and the reports (reports/): nothing else of ours is imported.

- `intervals`: medians over processes or runs with their intervals, ratio intervals, robust CoV, bimodality;
- `accuracy`: accuracy from a confusion matrix, its interval, and tests for an accuracy change;
- `changepoint`: change points in a series of runs.

The unit is always a process or a run, never the samples of one process (they share one machine state).
"""
