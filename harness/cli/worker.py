"""`bench worker start|stop`: make this machine a benchmark node of hardware target NAME in a Ray cluster.

`start` wraps `ray start --address HOST:PORT` with the custom resources {"bench_slot": 1, "target:NAME": 1}
and `--num-cpus=0 --num-gpus=0`: tasks of `bench run --cluster --target NAME` land here, one at a time, and the
node offers nothing to other Ray work. The node's target and `--machine-id` reach every task through the
environment of the node's processes. `stop` is `ray stop` (it stops every Ray process of this user on the host).
"""

from __future__ import annotations

import argparse
import subprocess

from common import console
from common.errors import UserError

NAME = "worker"
HELP = "join (start) or leave (stop) a Ray cluster as a benchmark node of one hardware target"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="worker_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    s = sub.add_parser("start", help="join the cluster at --address as a node of --target")
    s.add_argument("--address", required=True, metavar="HOST:PORT", help="the Ray head's GCS address")
    s.add_argument("--target", required=True, metavar="NAME", help="hardware target label, e.g. edge-a, gpu-h100")
    s.add_argument("--machine-id", default=None, metavar="ID",
                   help="name this node's machine in the history (default: derived from its hardware fingerprint)")
    s.add_argument("--node-ip-address", default=None, metavar="IP", help="the address other nodes reach this one at")
    s.add_argument("--object-store-mb", type=int, default=None, metavar="MB", help="object store size of the node")
    s.add_argument("--block", action="store_true", help="stay in the foreground; Ctrl-C stops the node")
    sub.add_parser("stop", help="stop the Ray processes on this host (`ray stop`)")


def run(args: argparse.Namespace) -> int:
    from harness.fleet.cluster import ray_cli, worker_env, worker_start_command

    if args.worker_command == "stop":
        return subprocess.run([*ray_cli(), "stop"], check=False).returncode
    if args.object_store_mb is not None and args.object_store_mb < 75:
        raise UserError(f"--object-store-mb {args.object_store_mb}: Ray needs at least 75 MB")
    cmd = worker_start_command(args.address, args.target, args.node_ip_address, args.block, args.object_store_mb)
    console.info(f"joining {args.address} as a benchmark node of target {args.target}")
    code = subprocess.run(cmd, env=worker_env(args.target, args.machine_id), check=False).returncode
    if code != 0:
        raise UserError(f"`ray start` failed (exit {code}) joining {args.address}; is the head running there?")
    return 0
