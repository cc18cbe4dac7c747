"""One PNG of the benchmarks' ratios, from the JSON files they write with --json.

    .venv/bin/python benchmarks/plot.py results/*.json --out benchmarks/results-cpu.png

A panel per benchmark: each row's ratio against the benchmark's own baseline (grey, the dashed line at 1.0)
and, where issue 7 sets one, the target (the red line; for (c), lower is better): blue bars meet it, orange
ones do not. gpu_check.json files plot their (b), (c) and augmentation-call rows the same way.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# benchmark -> (title, what a row's ratio is, target, higher is better)
PANELS = {
    "data": ("(a) data pipeline", "images/s vs torchvision ImageFolder + PIL", 3.0, True),
    "train": ("(b) training loop", "images/s vs a plain eager fp32 loop", None, True),
    "databound": ("(c) data-bound ratio", "epoch time with augmentation / model alone", 1.10, False),
    "frozen": ("(d) frozen-backbone Dog fine-tuning", "speed-up vs recomputing features", 5.0, True),
    "cifar_prep": ("(e) CIFAR-10 test-set preparation", "speed-up vs extract-then-read", 2.0, True),
    "augment_calls": ("augmentation batches per call", "images/s vs one batch per call", None, True),
}
# the columns that name a row, in the order they are joined
LABEL_COLUMNS = ("dataset", "case", "aug", "pipeline", "loop", "data", "run", "path", "budget_mb")
GPU_CHECK_PARTS = {
    "cifar_train": "train",
    "dog_train": "train",
    "cifar_databound": "databound",
    "dog_databound": "databound",
    "dog_workers_databound": "databound",
    "augment_calls": "augment_calls",
}


def row_label(row: dict) -> str:
    parts = [
        _budget(row[c]) if c == "budget_mb" else str(row[c]) for c in LABEL_COLUMNS if row.get(c) not in (None, "")
    ]
    return ", ".join(parts) or "?"


def _budget(megabytes: float) -> str:
    return "one batch per call" if not megabytes else f"up to {megabytes:g} MB per call"


def row_ratio(row: dict) -> float | None:
    value = row.get("ratio", row.get("speedup"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def panels_of(payload: dict, source: str) -> list[tuple[str, list[dict]]]:
    """(benchmark, rows) pairs in one JSON file: one for a benchmark's own file, several for gpu_check's."""
    name = payload.get("benchmark")
    if name == "gpu_check":
        found: dict[str, list[dict]] = {}
        for part, benchmark in GPU_CHECK_PARTS.items():
            rows = payload.get("results", {}).get(part)
            if isinstance(rows, list):
                found.setdefault(benchmark, []).extend(rows)
        return list(found.items())
    if name not in PANELS or not isinstance(payload.get("rows"), list):
        raise SystemExit(
            f"error: {source}: not a benchmark JSON this script knows (benchmark={name!r}); "
            f"give files written by the benchmarks' --json"
        )
    return [(name, payload["rows"])]


def _colour(value: float, target: float | None, higher: bool) -> str:
    """Grey: a baseline row; blue: meets the target (or, without one, beats the baseline); orange: does not."""
    if value == 1.0:
        return "#9a9a9a"
    goal = 1.0 if target is None else target
    return "#4c72b0" if (value >= goal if higher else value <= goal) else "#dd8452"


def plot(files: list[Path], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, str, list[dict]]] = []
    for path in files:
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise SystemExit(f"error: {path}: unreadable ({error}); rerun its benchmark with --json") from None
        machine = payload.get("machine", {})
        where = machine.get("gpu") or ", ".join(
            f"{machine[k]}{suffix}" for k, suffix in (("cpu", ""), ("cores", " cores")) if machine.get(k)
        )
        for name, rows in panels_of(payload, str(path)):
            panels.append((name, where, [r for r in rows if row_ratio(r) is not None]))
    order = list(PANELS)
    panels = sorted((p for p in panels if p[2]), key=lambda p: order.index(p[0]))  # (a) to (e), whatever the file order
    if not panels:
        raise SystemExit("error: no rows with a ratio in those files; give files written by the benchmarks' --json")
    heights = [1.2 + 0.32 * len(rows) for _, _, rows in panels]
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(9, sum(heights)), gridspec_kw={"height_ratios": heights}, squeeze=False
    )
    for axis, (name, where, rows) in zip(axes[:, 0], panels):
        title, meaning, target, higher = PANELS[name]
        labels = [row_label(r) for r in rows]
        values = [row_ratio(r) for r in rows]
        colours = [_colour(v, target, higher) for v in values]
        axis.barh(range(len(rows)), values, color=colours)
        axis.set_yticks(range(len(rows)), labels, fontsize=7)
        axis.invert_yaxis()
        axis.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
        if target is not None:
            axis.axvline(target, color="#c44e52", linewidth=1.2, label=f"target {'>=' if higher else '<='} {target:g}")
            axis.legend(loc="lower right", fontsize=7)
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:.2f}", va="center", fontsize=7)
        axis.set_xlim(0, max(values + [target or 0, 1.0]) * 1.15)
        axis.set_title(f"{title}: {meaning}" + (f" ({where})" if where else ""), fontsize=8, loc="left")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON files written by the benchmarks' --json")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.png"))
    args = parser.parse_args()
    print(f"plot: {plot(args.files, args.out)}")


if __name__ == "__main__":
    main()
