"""The tiny model builder, which lives in localcluster so that the demo can use it too."""

from localcluster.tinymodel import build_tiny_model

__all__ = ["build_tiny_model"]
