"""Measure: what happens inside and around one cell process (one backend x one variant).

`launcher` builds a cell's spec and starts a fresh interpreter (`python -m harness.measure.cell`); `cell` loads
the backend, runs the `scenarios` (latency at batch 1, throughput batched) through the timed `loop`, and the
`trackers` (noise: steal, foreign CPU, frequency) and `memory` reads (before/after, kernel high-water mark: no
thread in a timed loop) around it; `evidence` turns what the runtime reports into labels (int8 or not),
`agreement` checks logits against the reference, `roofline` holds each row to its device's roofs (measured by
`peaks_cpu` / `peaks_gpu`, intensity from `traffic`), `fingerprint` identifies the machine, and `faults` is the
documented test hook.

May import: common/, fer/, backends/ (through their contract). Never imports another room of harness/
(orchestrate, fleet, history, gate, cli) or reports/.
"""
