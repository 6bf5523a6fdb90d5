"""The fruit task, which lives in localcluster so that the demo can use it too."""

from localcluster.fruits import FRUITS, fruit_records, jsonl

__all__ = ["FRUITS", "fruit_records", "jsonl"]
