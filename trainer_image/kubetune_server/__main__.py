"""``python -m kubetune_server``: the same as ``kubetune-serve``."""

from kubetune_server.cli import main

main()
