"""``python -m kubetune.crd generate [--check] [--dir DIR ...]``.

Without ``--dir`` the CRDs go to both of their homes: ``crds/`` (for ``kubectl apply`` and
the tests) and the Helm chart's ``files/crds/``, which the chart renders as templates so that
``helm upgrade`` upgrades them (Helm never upgrades its ``crds/`` directory). Both are
generated, never edited, and ``--check`` covers both.
"""

import argparse
import sys
from pathlib import Path

from kubetune.crd.rendering import diff_all, write_all

DEFAULT_DIRS = (Path("crds"), Path("helm/kubetune/files/crds"))
"""Where ``generate`` writes, relative to the repository root (the working directory)."""


def main(argv: list[str] | None = None) -> int:
    """Write the CRDs, or with ``--check`` report (and fail on) stale directories."""
    parser = argparse.ArgumentParser(prog="python -m kubetune.crd")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write the CRDs from the API models")
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; print a diff and exit 1 if a directory is stale",
    )
    generate.add_argument(
        "--dir",
        type=Path,
        action="append",
        dest="dirs",
        help="a directory to write or check (repeatable); default: "
        + " and ".join(str(d) for d in DEFAULT_DIRS),
    )
    args = parser.parse_args(argv)
    directories: list[Path] = args.dirs or list(DEFAULT_DIRS)

    if args.check:
        stale = [d for d in directories if _report_stale(d)]
        return 1 if stale else 0
    for directory in directories:
        for path in write_all(directory):
            print(f"wrote {path}")
    return 0


def _report_stale(directory: Path) -> bool:
    """Print the diff of a stale ``directory``; whether it was stale."""
    diff = diff_all(directory)
    if diff:
        sys.stdout.write(diff)
        print(f"{directory} is stale: run `python -m kubetune.crd generate`", file=sys.stderr)
    return bool(diff)


if __name__ == "__main__":
    sys.exit(main())
