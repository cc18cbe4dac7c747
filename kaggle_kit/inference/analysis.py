"""Error analysis from stored predictions, with no retraining: what the model gets wrong, in one folder.

    ids, labels, logits (validation or, later, out-of-fold), class names, metric, temperature
    -> confusion.png + confusion.csv   counts normalised by true class; past MAX_MATRIX_CLASSES classes the
                                       picture keeps the most-confused ones (the CSV holds every class)
    -> confused_pairs.csv              (true, predicted) pairs by count
    -> high_loss.png                   the highest-loss images with true and predicted class and probability
    -> per_class.png + per_class.csv   the competition metric on each class's images alone
    -> reliability.png                 confidence against accuracy, before and after the temperature
    -> roc.png                         two classes only: the ROC curve of the second class
    -> analysis.md                     the numbers and pictures tied together, the metric's direction in words

`analyze` takes plain arrays so fold groups can pass out-of-fold predictions; `analyze_run` reads a run
folder (val_predictions.npz, config.json's classes, metric and temperature) and its decoded image cache.
Every picture has a fixed pixel size (`figure_size`), so a 120-class run stays as readable as a 10-class one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..competitions.metrics import Metric, one_hot_grades, softmax
from ..core import faults
from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.errors import KitError
from ..records.run_config import RunConfig

ANALYSIS_DIR = "analysis"
MAX_MATRIX_CLASSES = 20  # beyond this a matrix cell is too small to read: the picture keeps the most-confused classes
TOP_PAIRS = 20
GRID_IMAGES = 16  # 4 x 4 highest-loss images
RELIABILITY_BINS = 15
DPI = 100
FIGURES = {"confusion": (9.0, 8.0), "high_loss": (12.0, 13.0), "reliability": (11.0, 5.0), "roc": (6.0, 6.0)}

ImageSource = Callable[[str], np.ndarray]  # image id -> uint8 HxWx3 RGB


def figure_size(name: str, classes: int = 0) -> tuple[int, int]:
    """(width, height) in pixels of a picture; per_class grows with the class count, a bar per class."""
    if name == "per_class":
        return int(8.0 * DPI), int(max(3.0, 0.6 + 0.16 * classes) * DPI)
    width, height = FIGURES[name]
    return int(width * DPI), int(height * DPI)


@dataclass
class Analysis:
    folder: Path
    files: list[Path] = field(default_factory=list)
    confusion: np.ndarray | None = None  # counts, rows true class, columns predicted
    pairs: list[tuple[str, str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be drawn, and why


def confusion_counts(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts


def confused_pairs(counts: np.ndarray, classes: list[str], top: int = TOP_PAIRS) -> list[tuple[str, str, int]]:
    """(true class, predicted class, count) of the off-diagonal cells, largest first."""
    off = counts.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    rows, cols = np.unravel_index(order, off.shape)
    return [(classes[r], classes[c], int(off[r, c])) for r, c in zip(rows, cols) if off[r, c] > 0]


def classes_that_matter(counts: np.ndarray, keep: int = MAX_MATRIX_CLASSES) -> np.ndarray:
    """Indices of the `keep` classes with the most mistakes (as the true or the predicted class), most first."""
    off = counts.copy()
    np.fill_diagonal(off, 0)
    errors = off.sum(axis=0) + off.sum(axis=1)
    return np.argsort(-errors, kind="stable")[: min(keep, len(counts))]


def per_class_scores(labels: np.ndarray, probs: np.ndarray, metric: Metric) -> np.ndarray:
    """The metric on each class's images alone (NaN for a class with none): recall for accuracy, the class's
    mean loss for log loss; a metric that is no mean over rows declares its own (one-vs-rest AUC, F1, recall)."""
    if metric.per_class is not None:
        return metric.per_class[1](labels, probs)
    return np.array(
        [
            metric(labels[labels == k], probs[labels == k]) if (labels == k).any() else np.nan
            for k in range(probs.shape[1])
        ]
    )


def reliability_bins(labels: np.ndarray, probs: np.ndarray, bins: int = RELIABILITY_BINS):
    """(mean confidence, accuracy, count) per equal-width confidence bin, and the expected calibration error."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    mean_conf = np.bincount(which, confidence, bins) / np.maximum(count, 1)
    accuracy = np.bincount(which, correct.astype(float), bins) / np.maximum(count, 1)
    ece = float((np.abs(mean_conf - accuracy) * count).sum() / max(len(labels), 1))
    return mean_conf, accuracy, count, ece


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False and true positive rates over every threshold of `scores` for class 1, and the area under them."""
    order = np.argsort(-scores, kind="stable")
    positive = (labels[order] == 1).astype(float)
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores[order])), len(scores) - 1]
    tp, fp = np.cumsum(positive)[last_of_tie], np.cumsum(1 - positive)[last_of_tie]
    tpr = np.r_[0.0, tp / max(tp[-1], 1)]
    fpr = np.r_[0.0, fp / max(fp[-1], 1)]
    return fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids: numpy 1 and 2 alike


# --------------------------------------------------------------------------------------- pictures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)  # no tight bbox: the pixel size stays the one figure_size says
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def draw_confusion(counts: np.ndarray, classes: list[str], path: Path) -> Path:
    plt = _pyplot()
    shown = classes_that_matter(counts) if len(classes) > MAX_MATRIX_CLASSES else np.arange(len(classes))
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    matrix = rates[np.ix_(shown, shown)]
    fig, ax = plt.subplots(figsize=FIGURES["confusion"])
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    names = [_short(classes[k]) for k in shown]
    ax.set_xticks(range(len(shown)), names, rotation=90, fontsize=7 if len(shown) > 12 else 9)
    ax.set_yticks(range(len(shown)), names, fontsize=7 if len(shown) > 12 else 9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if len(shown) <= 12:
        for (r, c), value in np.ndenumerate(matrix):
            if value >= 0.005:
                ax.text(
                    c,
                    r,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.5 else "black",
                )
    cut = (
        f"the {len(shown)} most-confused of {len(classes)} classes (all in confusion.csv)"
        if len(shown) < len(classes)
        else f"{len(classes)} classes"
    )
    ax.set_title(f"confusion, share of each true class: {cut}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.subplots_adjust(left=0.22, bottom=0.24, right=0.93, top=0.94)
    return _save(fig, path)


def draw_high_loss(ids: list[str], labels, probs, classes: list[str], image: ImageSource, path: Path) -> Path:
    plt = _pyplot()
    losses = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-15, 1))
    worst = np.argsort(-losses, kind="stable")[:GRID_IMAGES]
    # no ticks from the start: the axes are off, yet matplotlib would still build and measure their ticks
    fig, axes = plt.subplots(4, 4, figsize=FIGURES["high_loss"], subplot_kw={"xticks": [], "yticks": []})
    for ax in axes.flat:
        ax.axis("off")
    for ax, n in zip(axes.flat, worst):
        predicted = int(probs[n].argmax())
        ax.imshow(image(ids[n]))
        ax.set_title(
            f"{_short(ids[n], 18)}  loss {losses[n]:.2f}\ntrue: {_short(classes[labels[n]])} "
            f"(p {probs[n, labels[n]]:.2f})\npred: {_short(classes[predicted])} (p {probs[n, predicted]:.2f})",
            fontsize=9,
            color="tab:red" if predicted != labels[n] else "black",
        )
    fig.suptitle("highest-loss validation images (red: predicted wrong)")
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9, hspace=0.55, wspace=0.1)
    return _save(fig, path)


def draw_per_class(scores: np.ndarray, classes: list[str], metric: Metric, path: Path) -> Path:
    plt = _pyplot()
    # worst first, so the classes to look at lead the list
    order = np.argsort(scores if metric.higher_is_better else -scores, kind="stable")
    width, height = figure_size("per_class", len(classes))
    fig, ax = plt.subplots(figsize=(width / DPI, height / DPI))
    ax.barh(range(len(order)), scores[order], color="tab:blue")
    ax.set_yticks(range(len(order)), [_short(classes[k], 28) for k in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_ylim(len(order) - 0.5, -0.5)
    what = metric.per_class[0].replace("_", " ") if metric.per_class else metric.label
    ax.set_xlabel(f"{what} on the class's images ({metric.direction})")
    ax.set_title(f"per-class {what}, worst first")
    ax.grid(axis="x", alpha=0.3)
    inch = DPI / height  # one inch in figure units: margins fixed in inches, whatever the height
    fig.subplots_adjust(left=0.32, right=0.97, top=1 - 0.35 * inch, bottom=0.5 * inch)
    return _save(fig, path)


def draw_reliability(labels, probs_before, probs_after, temperature: float, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=FIGURES["reliability"])
    for ax, probs, title in (
        (axes[0], probs_before, "before temperature (T = 1)"),
        (axes[1], probs_after, f"after temperature (T = {temperature:.3f})"),
    ):
        confidence, accuracy, count, ece = reliability_bins(labels, probs)
        edges = np.linspace(0, 1, RELIABILITY_BINS + 1)
        filled = count > 0
        ax.bar(
            edges[:-1][filled],
            accuracy[filled],
            width=1 / RELIABILITY_BINS,
            align="edge",
            alpha=0.7,
            edgecolor="black",
            label="accuracy in the bin",
        )
        ax.plot(confidence[filled], accuracy[filled], "o", color="tab:red", label="mean confidence of the bin")
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfectly calibrated")
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top probability)",
            ylabel="accuracy",
            title=f"{title}: ECE {ece:.3f}",
        )
        ax.legend(loc="upper left", fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.9, wspace=0.2)
    return _save(fig, path)


def draw_roc(labels, probs, classes: list[str], path: Path) -> Path:
    plt = _pyplot()
    fpr, tpr, auc = roc_curve(labels, probs[:, 1])
    fig, ax = plt.subplots(figsize=FIGURES["roc"])
    ax.plot(fpr, tpr, label=f"AUC {auc:.4f}")
    ax.plot([0, 1], [0, 1], "--", color="gray")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"ROC, positive class {_short(classes[1])}",
    )
    ax.legend(loc="lower right")
    fig.subplots_adjust(left=0.13, right=0.96, bottom=0.11, top=0.93)
    return _save(fig, path)


# --------------------------------------------------------------------------------------- the folder


def _write_csv(path: Path, header: list[str], rows) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return path


def analyze(
    ids: list[str],
    labels: np.ndarray,
    logits: np.ndarray,
    classes: list[str],
    metric: Metric,
    out: Path | str,
    temperature: float = 1.0,
    image: ImageSource | None = None,
    title: str = "validation predictions",
    thresholds: list[float] | None = None,
) -> Analysis:
    """Write every picture, table and analysis.md for these predictions into `out`. `thresholds` (grade cut
    points on the expected grade) make the confusion and per-class pictures show the submitted grades, not the
    argmax."""
    labels, logits = np.asarray(labels, np.int64), np.asarray(logits, np.float64)
    if logits.ndim != 2 or logits.shape != (len(ids), len(classes)) or len(labels) != len(ids):
        raise KitError(
            f"predictions do not fit: {len(ids)} ids, {len(labels)} labels, logits {logits.shape}, "
            f"{len(classes)} classes; pass one row of logits per id and one column per class"
        )
    if not len(ids):
        raise KitError(f"no predictions to analyse in {title}: the run needs a validation split (not --full-train)")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    result = Analysis(folder)
    before, after = softmax(logits), softmax(logits, temperature)
    submitted = after if thresholds is None else one_hot_grades(after, thresholds)
    counts = confusion_counts(labels, submitted.argmax(axis=1), len(classes))
    result.confusion, result.pairs = counts, confused_pairs(counts, classes)
    scores = per_class_scores(labels, submitted, metric)
    result.files += [
        _write_csv(
            folder / "confusion.csv",
            ["true \\ predicted", *classes],
            ([name, *row] for name, row in zip(classes, counts.tolist())),
        ),
        draw_confusion(counts, classes, folder / "confusion.png"),
        _write_csv(
            folder / "confused_pairs.csv",
            ["true", "predicted", "count", "share_of_true"],
            ((t, p, n, f"{n / counts[classes.index(t)].sum():.4f}") for t, p, n in result.pairs),
        ),
        _write_csv(
            folder / "per_class.csv",
            ["class", "images", metric.per_class[0] if metric.per_class else metric.name],
            ((name, int(counts[k].sum()), f"{scores[k]:.6g}") for k, name in enumerate(classes)),
        ),
        draw_per_class(scores, classes, metric, folder / "per_class.png"),
        draw_reliability(labels, before, after, temperature, folder / "reliability.png"),
    ]
    if image is not None:
        result.files.append(draw_high_loss(ids, labels, after, classes, image, folder / "high_loss.png"))
    else:
        result.notes.append("no image grid: the images were not available (see the warning above)")
    if len(classes) == 2:
        result.files.append(draw_roc(labels, after, classes, folder / "roc.png"))
    markdown = _markdown(result, labels, before, after, scores, classes, metric, temperature, title)
    result.files.append(folder / "analysis.md")
    atomic_write_text(folder / "analysis.md", markdown)
    return result


def _markdown(
    result: Analysis, labels, before, after, scores, classes, metric: Metric, temperature: float, title: str
) -> str:
    names = {path.name for path in result.files}
    ece_before, ece_after = reliability_bins(labels, before)[3], reliability_bins(labels, after)[3]
    accuracy = float((after.argmax(axis=1) == labels).mean())
    order = np.argsort(scores if metric.higher_is_better else -scores, kind="stable")
    lines = [
        f"# What the model gets wrong: {title}",
        "",
        f"{len(labels)} images, {len(classes)} classes. Competition metric: **{metric.label}** ({metric.direction}): "
        f"{metric(labels, before):.4f} before the temperature, {metric(labels, after):.4f} after it "
        f"(T = {temperature:.3f}). Accuracy {accuracy:.4f}.",
        "",
        "## Confusion",
        "",
        "![confusion](confusion.png)",
        "",
        "Rows are true classes, columns predicted ones, each row divided by its class's images. "
        + (
            "The picture keeps the classes with the most mistakes; the counts of every class are in `confusion.csv`."
            if len(classes) > MAX_MATRIX_CLASSES
            else "The counts are in `confusion.csv`."
        ),
        "",
        "Most-confused pairs (all in `confused_pairs.csv`):",
        "",
        "| true | predicted as | images |",
        "|---|---|---|",
        *(f"| {t} | {p} | {n} |" for t, p, n in result.pairs[:10]),
        *([] if result.pairs else ["| (no mistakes) | | |"]),
        "",
        f"## Per class ({metric.label}, {metric.direction})",
        "",
        "![per class](per_class.png)",
        "",
        "Worst classes: "
        + ", ".join(f"{classes[k]} {scores[k]:.4f}" for k in order[:5] if not np.isnan(scores[k]))
        + " (every class in `per_class.csv`).",
        "",
        "## Highest-loss images",
        "",
        *(
            [
                "![highest loss](high_loss.png)",
                "",
                "Titles: image id, its loss, the true class with the probability the "
                "model gave it, and the predicted class (red when wrong). Look for wrong labels, unusual crops, two "
                "animals in one photo.",
            ]
            if "high_loss.png" in names
            else result.notes
        ),
        "",
        "## Calibration",
        "",
        "![reliability](reliability.png)",
        "",
        f"Expected calibration error {ece_before:.4f} before the temperature, {ece_after:.4f} after it (lower is "
        f"better). Bars under the diagonal: the model is more confident than it is right.",
    ]
    if "roc.png" in names:
        auc = roc_curve(labels, after[:, 1])[2]
        lines += ["", "## ROC", "", "![roc](roc.png)", "", f"Area under the curve {auc:.4f} (higher is better)."]
    return "\n".join(lines) + "\n"


def stored_temperature(config: RunConfig) -> float:
    """The temperature fitted for the stored (identity-view) logits: best.pt's calibration's plain one, since a
    run that chose TTA keeps its TTA temperature at the top level, and that one fits averaged logits."""
    calibration = config.calibration_of("best") or {}
    value = calibration.get("temperature_plain", config.temperature)
    return float(value) if value else 1.0


def run_images(config: RunConfig, data_dir: Path | str | None = None) -> tuple[ImageSource | None, str | None]:
    """The run's training images by id, from the decoded cache (built if missing); or None and why not."""
    from ..competitions.registry import resolve
    from ..competitions.resolution import settle
    from ..data.cache import load_images
    from ..data.layout import open_layout

    try:
        comp = resolve(config.competition)
        recipe = settle(comp, config.recipe)  # an older run's sizes
        layout = open_layout(comp, data_dir or config.data_dir)
        cache = load_images(layout, "train", recipe.cache_side, skip_bad=recipe.skip_bad_images)
    except KitError as error:
        return None, f"the images are not drawn: {error}"
    position = {image_id: n for n, image_id in enumerate(cache.ids)}
    return (lambda image_id: cache[position[image_id]]), None


def analyze_run(
    run_dir: Path | str,
    out: Path | str | None = None,
    data_dir: Path | str | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Analysis:
    """`analyze` over a run folder's validation predictions; pictures into `out` (default <run>/analysis)."""
    from ..competitions.registry import resolve
    from ..records.run_folder import RunDir

    run = RunDir(run_dir)
    config = run.read_config()
    ids, labels, logits = run.val_predictions()
    classes = list(config.classes or ())
    if resolve(config.competition).target != "label":  # label sets, values, grades, rankings: their own tables
        from .target_analysis import analyze_target_run

        found = analyze_target_run(run_dir, Path(out or run.file(ANALYSIS_DIR)), resolve(config.competition), classes)
        return Analysis(Path(out or run.file(ANALYSIS_DIR)), found.files, found.confusion, found.pairs)
    if logits.shape[1:] != (len(classes),):
        raise KitError(
            f"{run.file('val_predictions.npz')}: {logits.shape[1:]} logit columns but config.json has "
            f"{len(classes)} classes; the run folder is damaged - train again"
        )
    image, why = run_images(config, data_dir)
    if why and on_warning:
        on_warning(why)
    result = analyze(
        ids,
        labels,
        logits,
        classes,
        resolve(config.competition).metric,
        out or run.file(ANALYSIS_DIR),
        stored_temperature(config),
        image,
        title=run.name,
        thresholds=(config.calibration_of("best") or {}).get("thresholds_plain"),  # fitted to the stored logits
    )
    if why:
        result.notes.append(why)
    return result


def analyze_finished_run(run_dir: Path | str, data_dir: Path | str | None = None) -> Analysis | None:
    """`analyze_run` at the end of training: a problem becomes a warning, since the trained run is fine."""
    import sys

    def warn(why: str) -> None:
        print(f"warning: {why}", file=sys.stderr)

    try:
        return analyze_run(run_dir, data_dir=data_dir, on_warning=warn)
    except faults.NoSpace:
        raise  # the machine's fault, not the analysis's: the command fails, and its rerun analyses again
    except KitError as error:
        warn(f"no error analysis: {error}")
        return None
