"""``python -m kubetune.crd generate [--check] [--dir crds]``."""

import argparse
import sys
from pathlib import Path

from kubetune.crd.rendering import diff_all, write_all


def main(argv: list[str] | None = None) -> int:
    """Write the CRDs, or with ``--check`` report (and fail on) a stale directory."""
    parser = argparse.ArgumentParser(prog="python -m kubetune.crd")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write crds/ from the API models")
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; print a diff and exit 1 if the directory is stale",
    )
    generate.add_argument("--dir", type=Path, default=Path("crds"), help="default: ./crds")
    args = parser.parse_args(argv)

    if args.check:
        diff = diff_all(args.dir)
        if diff:
            sys.stdout.write(diff)
            print(f"{args.dir} is stale: run `python -m kubetune.crd generate`", file=sys.stderr)
            return 1
        return 0
    for path in write_all(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
