"""How long the local cluster and S3 take to come up, cold (first build) and warm.

Prints the build time of each tool when it is not cached yet, then the time from nothing to
Ready GPU nodes plus a ready S3 server, over a few runs. Target: under 30 s with binaries
cached. Run: ``python bench/cluster_startup.py --runs 3``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from localcluster import Cluster, S3Server
from localcluster.tools import TOOLS, ensure_tools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    for name in TOOLS:
        started = time.monotonic()
        ensure_tools([name])
        print(f"tool {name:12} ready in {time.monotonic() - started:7.1f} s")

    timings = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            cluster, s3 = Cluster(Path(tmp) / "cluster"), S3Server(Path(tmp) / "s3")
            started = time.monotonic()
            try:
                cluster.up()
                s3.up()
                timings.append(time.monotonic() - started)
            finally:
                s3.down()
                cluster.down()
        print(f"run {run + 1}: cluster + S3 up in {timings[-1]:.1f} s")
    print(
        f"warm start-up: median {statistics.median(timings):.1f} s, max {max(timings):.1f} s "
        f"(target 30 s: {'met' if max(timings) < 30 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
