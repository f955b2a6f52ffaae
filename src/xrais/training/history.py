"""Per-epoch training history: JSON log and learning curves (like the paper's Figure 6)."""
from __future__ import annotations

import json
import os
from typing import List

from ..plots import _pyplot
from .metrics import METRIC_NAMES

TITLES = {"loss": "loss", "accuracy": "accuracy", "mae": "MAE (Å⁻¹)", "spearman": "Spearman ρ", "auc": "ROC AUC"}


def write_json(path: str, payload: dict) -> None:
    """Write JSON atomically (a reader never sees a half-written file)."""
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, ensure_ascii=False, default=str)
        handle.write("\n")
    os.replace(partial, path)


def plot_curves(path: str, history: List[dict], kind: str, title: str = "", resumed_at: List[int] = ()) -> None:
    """PNG of every metric versus epoch, train (grey) and validation (black), with the best epoch
    and the epochs where the run was resumed marked."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    names = METRIC_NAMES[kind]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
    epochs = [entry["epoch"] for entry in history]
    best = [entry["epoch"] for entry in history if entry.get("best")]
    for ax, name in zip(axes[0], names):
        for split, style in (("train", dict(color="0.6", marker="o", ms=3)), ("validation", dict(color="k", marker="s", ms=3))):
            ax.plot(epochs, [entry[split].get(name, float("nan")) for entry in history], label=split, lw=1, **style)
        if best:
            ax.axvline(best[-1], color="tab:red", lw=0.8, ls="--")
        for epoch in resumed_at:
            ax.axvline(epoch - 0.5, color="tab:blue", lw=0.6, ls=":")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(TITLES[name], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    partial = path + ".partial.png"
    fig.savefig(partial, dpi=90)
    plt.close(fig)
    os.replace(partial, path)
