"""Gate: the regression decision between stored runs (`bench compare`).

`regression` compares a candidate run with a baseline run or with its history, cell by cell, and gives every cell one
verdict (regression, improvement, no change, inconclusive with its reason, broken); `baseline` judges one pair of
runs against the A/A noise learned from same-config reruns; `history` finds change points and outliers in a run
series and judges the candidate's level since the latest accepted change; `validate` replays both on a stored
history and on planted steps (`bench gate validate`). The statistics themselves live in `common.stats`, shared with
the reports; the CLI loads runs and acceptances from the store and passes them in.

May import: common/ only (it reads stored run dicts). Never imports measure, orchestrate, fleet, history or cli,
nor reports/.
"""

DEFAULT_MARGIN = 0.10  # the largest slowdown a "no change" may hide, both rules (the detection goal: +10%)
