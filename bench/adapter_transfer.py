"""Our adapter push and pull against ``aws s3 cp --recursive`` (awscli), on a local MinIO.

The adapter-like directory is about 200 MB of incompressible bytes in the files a PEFT
adapter directory holds: the adapter weights (a rank-64 all-linear adapter of an 8B model is
about 160 MiB), a second safetensors file (trainable embeddings), the tokenizer and small JSON
files. Each transfer is one fresh command (both sides pay interpreter start-up, both from
compiled bytecode, as installed packages run); ours does more than copy bytes: push hashes
every file into the manifest, pull verifies every file against it. Rounds alternate which
side goes first; medians over the rounds.

    python bench/adapter_transfer.py                   # 200 MB, 5 rounds
    python bench/adapter_transfer.py --smoke --out X   # 12 MB, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    DOCS,
    RESULTS,
    ROOT,
    environment,
    machine,
    median,
    print_table,
    ratio,
    verdict,
    write_json,
)
from adapter_push import BASE_MODEL

from kubetune_server.sync import CONFIG_ENV

MB = 10**6
# Shares of the total size, in the files of a PEFT adapter directory.
WEIGHT_FILES = {
    "adapter_model.safetensors": 0.80,
    "embeddings/trainable_tokens.safetensors": 0.115,
    "tokenizer.json": 0.085,
}
SMALL_FILES = {
    "adapter_config.json": json.dumps({"r": 16, "lora_alpha": 32, "peft_type": "LORA"}),
    "tokenizer_config.json": json.dumps({"model_max_length": 131072}),
    "special_tokens_map.json": json.dumps({"eos_token": "<|eot_id|>"}),
    "chat_template.jinja": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    "README.md": "# adapter\n",
}
TARGET = 1.0


def build_adapter(directory: Path, size: int) -> int:
    """Write the adapter-like directory; returns its size in bytes."""
    for name, share in WEIGHT_FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        remaining = int(size * share)
        with path.open("wb") as handle:
            while remaining:
                chunk = min(remaining, 8 * MB)
                handle.write(os.urandom(chunk))
                remaining -= chunk
    for name, text in SMALL_FILES.items():
        (directory / name).write_text(text)
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def compile_ours() -> None:
    """Compile our packages' bytecode, as installing them does (the runtime image's ``pip
    install``; awscli's is compiled in site-packages). Running from a checkout with
    ``PYTHONDONTWRITEBYTECODE`` set, every command of ours would otherwise compile its
    modules from source: about 0.09 s of a pull's start-up that no installed copy pays."""
    import compileall

    for root in ("operator", "trainer_image"):
        if not compileall.compile_dir(ROOT / root, quiet=1):
            raise RuntimeError(f"cannot compile {ROOT / root}")


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {done.stderr[-3000:]}")
    return seconds, done.stdout


def _aws() -> str:
    found = Path(sys.executable).parent / "aws"
    return str(found) if found.exists() else shutil.which("aws") or "aws"


def _same_tree(left: Path, right: Path) -> bool:
    def listing(root: Path) -> dict[str, int]:
        return {
            p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
        }

    return listing(left) == listing(right)


def run_round(
    index: int, source: Path, work: Path, bucket: str, endpoint: str, env: dict[str, str]
) -> dict[str, Any]:
    """One push and one pull per side; pulls fetch the same published artifact."""
    ours_prefix, aws_prefix = f"s3://{bucket}/ours-{index}/", f"s3://{bucket}/aws-{index}/"
    aws = [_aws(), "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", endpoint]
    artifact = f"{ours_prefix}run/adapter/"
    pushes: list[tuple[str, list[str], dict[str, str]]] = [
        (
            "ours",
            [sys.executable, str(BENCH / "adapter_push.py"), str(source), ours_prefix, endpoint],
            env,
        ),
        ("aws", [*aws, str(source), aws_prefix], env),
    ]
    pulled_ours, pulled_aws = work / f"cache-{index}", work / f"aws-{index}"
    # The pull command of the product: a vLLM pod's init container runs exactly this.
    sync = [sys.executable, "-m", "kubetune_server.sync", "--model-name", BASE_MODEL]
    config = {"adapters": [{"version": "bench-v1", "uri": artifact, "s3": {"endpoint": endpoint}}]}
    pulls: list[tuple[str, list[str], dict[str, str]]] = [
        (
            "ours",
            [*sync, "--dest", str(pulled_ours), "--termination-path", str(work / "termination")],
            {**env, CONFIG_ENV: json.dumps(config)},
        ),
        ("aws", [*aws, artifact, str(pulled_aws)], env),
    ]
    if index % 2:
        pushes.reverse()
        pulls.reverse()
    result: dict[str, Any] = {"round": index}
    for kind, steps in (("push", pushes), ("pull", pulls)):
        for side, command, command_env in steps:
            seconds, out = _timed(command, command_env)
            result[f"{side}_{kind}"] = seconds
            if side == "ours" and kind == "push":
                result["ours_push_inprocess"] = json.loads(out.strip().splitlines()[-1])
    verified = next(p for p in pulled_ours.iterdir() if not p.name.startswith("."))
    (pulled_aws / "manifest.json").unlink()
    if not (_same_tree(source, verified) and _same_tree(source, pulled_aws)):
        raise RuntimeError("a pull does not match the pushed directory")
    shutil.rmtree(pulled_ours)
    shutil.rmtree(pulled_aws)
    return result


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="12 MB, 1 round")
    parser.add_argument("--size-mb", type=int, help="directory size in MB (default 200)")
    parser.add_argument("--rounds", type=int, help="default 5")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/)")
    parser.add_argument("--plot", type=Path, help="PNG (default docs/benchmarks/transfer.png)")
    return parser.parse_args()


def main() -> None:
    from localcluster import S3Server

    args = _arguments()
    size = (args.size_mb or (12 if args.smoke else 200)) * MB
    rounds = args.rounds or (1 if args.smoke else 5)
    out = args.out or RESULTS / "transfer.json"
    png = args.plot or (None if args.smoke else DOCS / "transfer.png")
    compile_ours()
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        work = Path(tmp)
        total = build_adapter(work / "adapter", size)
        server = S3Server(work / "s3")
        server.up()
        try:
            info = server.info
            info.client().create_bucket(Bucket="bench")
            env = {**environment(), **info.env()}
            env.pop("AWS_ENDPOINT_URL", None)  # both sides get the endpoint explicitly
            results = []
            for index in range(rounds):
                results.append(
                    run_round(index, work / "adapter", work, "bench", info.endpoint, env)
                )
                r = results[-1]
                print(
                    f"  round {index + 1}: push ours {r['ours_push']:.2f} s, aws "
                    f"{r['aws_push']:.2f} s; pull ours {r['ours_pull']:.2f} s, aws "
                    f"{r['aws_pull']:.2f} s"
                )
        finally:
            server.down()
    summary = summarize(results, total)
    print_table(
        f"adapter transfer, {total / MB:.0f} MB, medians of {rounds} rounds (MB/s)",
        ["transfer", "ours s", "aws s", "ours MB/s", "aws MB/s", "ratio", "target"],
        [
            [
                row["transfer"],
                f"{row['oursSeconds']:.2f}",
                f"{row['awsSeconds']:.2f}",
                f"{row['oursMBps']:.0f}",
                f"{row['awsMBps']:.0f}",
                f"{row['ratio']:.2f}x",
                f">= {TARGET:.1f}x {row['verdict']}",
            ]
            for row in summary
        ],
    )
    write_json(
        out,
        {
            "benchmark": "transfer",
            "smoke": args.smoke,
            "machine": machine(),
            "bytes": total,
            "files": [*WEIGHT_FILES, *SMALL_FILES],
            "rounds": results,
            "comparisons": summary,
        },
    )
    print(f"results: {out}")
    if png is not None:
        plot(summary, png, total)
        print(f"plot: {png}")


def summarize(results: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    """Median seconds per side and direction; the ratio is aws time over ours (speed-up)."""
    rows = []
    for kind in ("push", "pull"):
        ours = median([r[f"ours_{kind}"] for r in results])
        aws = median([r[f"aws_{kind}"] for r in results])
        speedup = ratio(aws, ours)
        row = {
            "transfer": kind,
            "oursSeconds": ours,
            "awsSeconds": aws,
            "oursMBps": total / MB / ours,
            "awsMBps": total / MB / aws,
            "ratio": speedup,
            "target": TARGET,
            "verdict": verdict(speedup, TARGET),
        }
        if kind == "push":  # the push script reports its imports apart from the transfer
            inner = [r["ours_push_inprocess"] for r in results]
            row["oursInProcessSeconds"] = median([i["transferSeconds"] for i in inner])
            row["oursImportSeconds"] = median([i["importSeconds"] for i in inner])
        rows.append(row)
    return rows


def plot(summary: list[dict[str, Any]], path: Path, total: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    kinds = [row["transfer"] for row in summary]
    positions = range(len(kinds))
    ours = axis.bar(
        [p - 0.2 for p in positions],
        [r["oursMBps"] for r in summary],
        0.4,
        label="kubetune (with sha256 manifest/verification)",
        color="#1f77b4",
    )
    aws = axis.bar(
        [p + 0.2 for p in positions],
        [r["awsMBps"] for r in summary],
        0.4,
        label="aws s3 cp --recursive",
        color="#ff7f0e",
    )
    axis.bar_label(ours, fmt="%.0f")
    axis.bar_label(aws, fmt="%.0f")
    axis.set_xticks(list(positions), kinds)
    axis.set_ylabel("MB/s (median, whole command)")
    axis.set_title(f"adapter transfer, {total / MB:.0f} MB, local MinIO")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
