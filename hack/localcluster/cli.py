"""``kubetune-cluster up|down|status|env|agent``: the local cluster and S3 server from a shell.

``agent`` runs the node agent (pods on node local-agent-0 as local processes) in the
foreground against the cluster in ``--dir``; other options go to ``localcluster.nodeagent``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from localcluster.cluster import Cluster
from localcluster.s3server import S3Server
from localcluster.tools import ensure_tools


def _env_lines(root: Path) -> list[str]:
    cluster, s3 = Cluster(root / "cluster").info, S3Server(root / "s3").info
    env = {"KUBECONFIG": str(cluster.kubeconfig), **s3.env()}
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubetune-cluster", description=__doc__)
    parser.add_argument("command", choices=["build", "up", "down", "status", "env", "agent"])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(".kubetune"),
        help="where the cluster and S3 keep their state (default: ./.kubetune)",
    )
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "agent":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    root: Path = args.dir.resolve()
    cluster, s3 = Cluster(root / "cluster"), S3Server(root / "s3")

    match args.command:
        case "build":
            started = time.monotonic()
            ensure_tools()
            print(f"# tools ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
        case "up":
            started = time.monotonic()
            cluster.up()
            try:
                s3.up()
            except BaseException:
                cluster.down()
                raise
            print(
                f"# local cluster and S3 up in {time.monotonic() - started:.1f}s", file=sys.stderr
            )
            print("\n".join(_env_lines(root)))
        case "down":
            s3.down()
            cluster.down()
        case "env":
            print("\n".join(_env_lines(root)))
        case "status":
            states = cluster.status()
            states["minio"] = s3.ready()
            for name, ok in states.items():
                print(f"{name:26} {'up' if ok else 'DOWN'}")
            return 0 if all(states.values()) else 1
        case "agent":
            # Imported here: the Kubernetes client is slow to import and only the agent uses it.
            from localcluster import nodeagent

            kubeconfig = str(cluster.info.kubeconfig)
            return nodeagent.main(["--kubeconfig", kubeconfig, "--dir", str(root / "agent"), *rest])
    return 0


if __name__ == "__main__":
    sys.exit(main())
