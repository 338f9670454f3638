"""Gate: the regression decision between stored runs (`bench compare`).

`regression` compares a candidate run with a baseline run (processes as the unit) or with its history (runs as the
unit: persistence and change points), for latency, throughput and accuracy; the statistics themselves live in
`common.stats`, shared with the reports.

May import: common/ only (it reads stored run dicts). Never imports measure, orchestrate, fleet, history or cli,
nor reports/.
"""
