"""`bench accept RUN --reason "..."`: the level from RUN on becomes the baseline of `bench compare --history`.

Stored with who accepted it, when and why (table `accepted_changes`, schema v4); `bench history` lists acceptances
and the report shows them. Without filters every cell of the run is accepted; --backend/--variant/--scenario/
--batch-size/--machine narrow it to some cells.

The run's artifact files (recorded by `bench run` under `artifacts`) are copied by content into the kept-artifacts
directory (`store.artifacts_dir`; default artifacts/ beside the SQLite file: harness.orchestrate.kept_artifacts)
before the acceptance is stored, so `bench run --reference accepted` can measure them later, after the cache that
held them has changed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from common.console import console, set_quiet
from common.errors import UserError
from harness.cli._common import add_store_arguments, open_store

NAME = "accept"
HELP = "accept a change: the level from RUN on is the new baseline of compare --history (stored with who/why)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_arguments(p)
    p.add_argument("run_ref", metavar="RUN", help="the stored run the new level starts at (a run id or 'latest')")
    p.add_argument("--reason", required=True, help="why the change is accepted (stored and shown)")
    p.add_argument("--who", default=None, help="who accepts it (default: $BENCH_USER, else the login name)")
    p.add_argument("--backend", default=None, help="only this backend's cells")
    p.add_argument("--variant", default=None, help="only this variant's cells")
    p.add_argument("--scenario", default=None, choices=("latency", "throughput"), help="only this scenario")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="only this batch size")
    p.add_argument("--machine", default=None, metavar="ID", help="only the rows of this machine (cluster runs)")
    p.add_argument("--json", action="store_true", help="print the stored acceptance as JSON on stdout")


def _who(given: str | None) -> str:
    if given and given.strip():
        return given.strip()
    env = os.environ.get("BENCH_USER", "").strip()
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    if args.batch_size is not None and args.batch_size <= 0:
        raise UserError(f"--batch-size {args.batch_size}: must be a positive batch size")
    from harness.cli._common import load_config_from_args
    from harness.orchestrate.kept_artifacts import default_artifacts_dir, keep_run

    cfg = load_config_from_args(args)
    with open_store(args) as store:
        run_id = args.run_ref
        if run_id == "latest":
            ids = store.run_ids()
            if not ids:
                raise UserError(f"the results store {store.url} holds no runs yet; nothing to accept")
            run_id = ids[-1]
        run = store.load_run(run_id)  # an unknown run id: one error line with the recent ids
        root = default_artifacts_dir(store.url, cfg.store.runs_dir, cfg.store.artifacts_dir)
        kept, skipped = keep_run(root, run, [args.variant] if args.variant else None)
        record = store.accept(run_id, args.reason, _who(args.who), machine_id=args.machine, backend=args.backend,
                              variant=args.variant, scenario=args.scenario, batch_size=args.batch_size)
    record = {**record, "artifacts": {v: str(root / "sha256" / d) for v, d in kept.items()},
              "artifacts_not_kept": skipped}
    if args.json:
        sys.stdout.write(json.dumps(record) + "\n")
        return 0
    cells = ", ".join(f"{k}={record[k]}" for k in ("machine_id", "backend", "variant", "scenario", "batch_size")
                      if record[k] is not None) or "every cell"
    console.print(f"accepted run {run_id} ({cells}) by {record['who']} at {record['created']}: {record['reason']}",
                  markup=False)
    if kept:
        console.print(f"kept the files of {', '.join(sorted(kept))} under {root} (for `bench run --reference "
                      "accepted`)", markup=False)
    for variant, why in sorted(skipped.items()):
        what = "no files kept" if variant == "*" else f"{variant}: files not kept"
        console.print(f"note: {what} ({why}); `bench run --reference accepted` cannot measure them", markup=False)
    return 0
