"""Fleet: the same cells on other machines, dispatched through a Ray cluster (`cluster`).

The driver prepares artifacts, ships them by content hash, runs each cell on a benchmark node of its hardware
target through the same cell protocol as a local run, and alone writes the results. Ray is imported only here,
and only when a cluster run or `bench worker` asks for it.

May import: common/, fer/, backends/ and harness.measure (which holds what the fleet shares with the local grid:
cell settings, timed specs, rows from processes). Never imports orchestrate, history, gate or cli, nor reports/.
"""
