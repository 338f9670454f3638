"""Orchestrate: the grid and the pipeline on top of `measure`.

`pipeline` makes sure the data, the dense model and the compressed artifacts exist (cached); `runner` runs the
backend x variant grid in rounds of fresh cell processes, in a shuffled order, and turns the processes into result
rows with intervals; `sweep` builds the compression frontier's points.

May import: common/, fer/, compression/, backends/ and harness.measure. Never imports history, gate, fleet or
cli, nor reports/.
"""
