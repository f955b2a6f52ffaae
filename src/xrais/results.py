"""Writing prediction results: JSON, CSV, the terminal table, and plots vs image number (paper
Figures 8 and 14)."""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import __version__
from .io.base import image_number

#: Columns of the terminal table: (result key, header, format).
TABLE_COLUMNS = (
    ("d_min", "d_min/Å", "{:.2f}"),
    ("d_mean", "d_mean/Å", "{:.2f}"),
    ("b_factor", "B/Å²", "{:.1f}"),
    ("inverse_d_sigma", "σ(1/d)/Å⁻¹", "{:.3f}"),
    ("resolution_undetermined", "undetermined", "{}"),
    ("inverse_d_spread", "spread/Å⁻¹", "{:.3f}"),
    ("p_multilattice", "p_multi", "{:.3f}"),
    ("n_spots", "spots", "{:d}"),
    ("d_min_spots", "d_spots/Å", "{:.2f}"),
    ("n_lattices_indexed", "lattices", "{:d}"),
    ("fraction_indexed", "indexed", "{:.2f}"),
    ("p_multilattice_resnet", "p_multi_resnet", "{:.3f}"),
)


def _plain(value):
    """JSON/CSV-safe value: no NaN/inf (→ None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(path: str, results: Sequence[Dict[str, Any]], summary: Dict[str, Any],
               parameters: Optional[Dict[str, Any]] = None) -> None:
    """``{"images": [...], "summary": {...}, "parameters": {...}, "xrais_version": ...}``.

    Per image (``xrais.Predictor`` fields): d_min, d_mean (Å), d_quadrants (Å, quadrant order),
    inverse_d (the image's 1/d, Å⁻¹: d_min's), inverse_d_sigma (its σ, Å⁻¹, from a shell-profile
    model; null from a ResNet), resolution_undetermined (σ too large to tell; null from a ResNet),
    inverse_d_quadrants and inverse_d_spread (Å⁻¹), b_factor (Å²: the label relation's
    B = 4d² + 12 at d_min, not a Wilson B), p_multilattice (0–1; null when no lattice indexes),
    multilattice, multilattice_undetermined (why there is no answer, else null), diffraction,
    read_ms/condition_ms/predict_ms (ms), error; lists are JSON arrays. NaN/inf are written as null.
    """
    document = {"images": [{k: _plain(v) for k, v in r.items()} for r in results], "summary": _plain_dict(summary),
                "parameters": parameters or {}, "xrais_version": __version__}
    _atomic_write(path, json.dumps(document, indent=1, allow_nan=False))


def _plain_dict(values: Dict[str, Any]) -> Dict[str, Any]:
    return {k: _plain(v) for k, v in values.items()}


def write_csv(path: str, results: Sequence[Dict[str, Any]], fields: Sequence[str]) -> None:
    """One row per image, one value per cell: a column per result key, and a per-quadrant list
    (d_quadrants…) as one column per quadrant, ``<key>_<quadrant number>`` (d_quadrants_0 …
    d_quadrants_3; quadrant 0 alone with one quadrant per image). None is an empty cell."""
    widths = {f: max((len(r[f]) for r in results if isinstance(r.get(f), (list, tuple))), default=0) for f in fields}
    header = [name for f in fields for name in ([f"{f}_{q}" for q in range(widths[f])] if widths[f] else [f])]
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for result in results:
            row = []
            for f in fields:
                value = _plain(result.get(f))
                if widths[f]:
                    values = list(value) if isinstance(value, list) else []
                    row += [_csv_cell(v) for v in values + [None] * (widths[f] - len(values))]
                else:
                    row.append(_csv_cell(value))
            writer.writerow(row)


def _csv_cell(value) -> str:
    return "" if value is None else str(value)


def _atomic_write(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def table_lines(results: Sequence[Dict[str, Any]], experimental: Optional[Dict[str, str]] = None) -> List[str]:
    """Per-image table (only the columns some result has), errors on their own rows, what some
    predictor could not analyse on a line under its row. experimental:
    result fields from an experimental model (``Predictor.experimental``): their headers get a "*"
    and a last line says why."""
    experimental = experimental or {}
    columns = [c for c in TABLE_COLUMNS if any(r.get(c[0]) is not None for r in results)]
    names = [os.path.basename(result_label(r)) for r in results]
    name_width = min(48, max([len("image")] + [len(name) for name in names]))
    header = f"{'image':<{name_width}} " + " ".join(
        f"{h + ('*' if key in experimental else ''):>10}" for key, h, _ in columns)
    lines = [header, "-" * len(header)]
    for r, name in zip(results, names):
        name = name[-name_width:]
        if r.get("error"):
            lines.append(f"{name:<{name_width}} error: {r['error']}")
            continue
        cells = []
        for key, _, fmt in columns:
            value = r.get(key)
            if value is None:
                cells.append(f"{'no diff.' if key == 'd_min' and r.get('diffraction') is False else '-':>10}")
            elif isinstance(value, bool):
                cells.append(f"{'yes' if value else 'no':>10}")
            else:
                cells.append(f"{fmt.format(value):>10}")
        lines.append(f"{name:<{name_width}} " + " ".join(cells))
        if r.get("not_analysed"):
            lines.append(f"{'':<{name_width}} not analysed by {r['not_analysed']}")
    for notice in dict.fromkeys(experimental[key] for key, _, _ in columns if key in experimental):
        starred = ", ".join(h for key, h, _ in columns if experimental.get(key) == notice)
        lines.append(f"* {starred}: experimental model, {notice}")
    return lines


def result_label(result: Dict[str, Any]) -> str:
    """The image a result is for: its file, with ``:frame`` where the frame is not the number the
    file name carries already (the frames of a NeXus series; :func:`xrais.io.base.image_number`)."""
    image, frame = str(result.get("image", "")), result.get("frame")
    return image if frame is None or frame == image_number(image) else f"{image}:{frame}"


def image_numbers(results: Sequence[Dict[str, Any]]) -> Tuple[List[int], str]:
    """(x values, axis label) for plotting results against the image: their ``frame`` (image
    numbers of a CBF series, frame indices of a NeXus file) when these tell the images apart,
    otherwise their position in the list from 1."""
    frames = [r.get("frame") for r in results]
    if all(isinstance(f, int) for f in frames) and len(set(frames)) == len(frames):
        return frames, "image number"
    return list(range(1, len(results) + 1)), "image (position in the input)"


def summary_lines(summary: Dict[str, Any]) -> List[str]:
    """The summary as aligned lines; a value from an experimental model says so beside it (the
    model's notice in full the first time, "as above" after)."""
    caveats = summary.get("experimental") or {}
    labels = {
        "n_images": "images", "n_failed": "failed", "n_diffraction": "with diffraction",
        "median_d_min": "median d_min (Å)", "median_d_mean": "median d_mean (Å)", "best_d_min": "best d_min (Å)",
        "xrais_b": "XRAIS B (Å²)", "n_undetermined": "resolution undetermined", "fraction_multilattice": "fraction multi-lattice",
        "fraction_multilattice_resnet": "fraction multi-lattice (ResNet)", "median_n_spots": "median spots",
        "n_multilattice_indexed": "multi-lattice (indexed)",
        "n_multilattice_undetermined": "multi-lattice undetermined (no lattice)",
    }
    lines, said = [], set()
    for key, value in summary.items():
        if key == "experimental":
            continue
        note = ""
        if key in caveats:  # each notice in full once, then referred to
            note = f"  (experimental model: {'as above' if caveats[key] in said else caveats[key]})"
            said.add(caveats[key])
        lines.append(f"  {labels.get(key, key):<24} {value}{note}")
    return lines


def plot_results(path: str, results: Sequence[Dict[str, Any]], title: str = "", reduce: str = "min",
                 experimental: Optional[Dict[str, str]] = None, multilattice_threshold: float = 0.5) -> bool:
    """PNG of :func:`results_figure`; False (nothing written) when the results have nothing to plot."""
    fig = results_figure(results, title, experimental, multilattice_threshold)
    if fig is None:
        return False
    import matplotlib.pyplot as plt  # after results_figure chose the Agg back end

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _legend(ax) -> None:
    """A legend of what the panel shows; none when it shows nothing (every image failed, or none
    has this answer), rather than matplotlib's warning on the terminal."""
    if any(not artist.get_label().startswith("_") for artist in ax.lines + ax.collections):
        ax.legend(fontsize=8, loc="best")


def _resolution_with_sigma(ax, shown, colour: str, label: str) -> None:
    """d_min with the resolution range of 1/d ± σ as an error bar; undetermined images hollow."""
    for undetermined in (False, True):
        points = [(n, r) for n, r in shown if bool(r.get("resolution_undetermined")) == undetermined]
        if not points:
            continue
        d = np.array([r["d_min"] for _, r in points], dtype=float)
        inverse_d = np.array([r.get("inverse_d") or 1.0 / r["d_min"] for _, r in points], dtype=float)
        sigma = np.array([r.get("inverse_d_sigma") or 0.0 for _, r in points], dtype=float)
        low = 1.0 / (inverse_d + sigma)  # the better resolution end of 1/d ± σ
        high = np.where(inverse_d - sigma > 0, 1.0 / np.maximum(inverse_d - sigma, 1e-9), 2.0 * d)
        ax.errorbar([n for n, _ in points], d, yerr=[d - low, np.minimum(high, 2.0 * d) - d], fmt="o",
                    markersize=3.5, color=colour, mfc="none" if undetermined else colour, elinewidth=0.8,
                    label=label + (" (undetermined)" if undetermined else ""))


#: Multi-lattice probabilities a result may carry: key → (legend, colour).
MULTILATTICE_PROBABILITIES = {"p_multilattice": ("lattice evidence", "tab:purple"),
                              "p_multilattice_resnet": ("quadrant ResNet", "k")}


def results_figure(results: Sequence[Dict[str, Any]], title: str = "", experimental: Optional[Dict[str, str]] = None,
                   multilattice_threshold: float = 0.5):
    """A matplotlib figure: resolution vs image number (d_min red, d_mean blue, spot-based grey;
    paper Figure 8) and/or multi-lattice probability vs image number (Figure 14) with the decision
    threshold, whole image numbers on the x axis (:func:`image_numbers`); a panel whose numbers come
    from an experimental model (``experimental``: Predictor.experimental) says so in its title.
    None when there is nothing to plot."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    numbers, x_label = image_numbers(results)
    has_resolution = any("diffraction" in r for r in results)
    multi_keys = [key for key in MULTILATTICE_PROBABILITIES if any(r.get(key) is not None for r in results)]
    has_multi = bool(multi_keys)
    has_spots = any(r.get("d_min_spots") is not None for r in results)
    panels = [p for p, wanted in (("resolution", has_resolution or has_spots), ("multilattice", has_multi)) if wanted]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), sharex=True, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        if panel == "resolution":
            with_sigma = any(r.get("inverse_d_sigma") is not None for r in results)
            for key, colour, label in (("d_min", "tab:red", "XRAIS d_min ± σ" if with_sigma else
                                        "XRAIS d_min (best quadrant)"),
                                       ("d_mean", "tab:blue", "XRAIS d_mean"),
                                       ("d_min_spots", "0.55", "spot finding")):
                shown = [(n, r) for n, r in zip(numbers, results) if r.get(key) is not None]
                if key == "d_min" and with_sigma:
                    _resolution_with_sigma(ax, shown, colour, label)
                elif shown:
                    ax.plot([n for n, _ in shown], [r[key] for _, r in shown], ".", color=colour, label=label,
                            markersize=5)
            blanks = [n for n, r in zip(numbers, results) if r.get("diffraction") is False]
            if blanks:
                ax.plot(blanks, [ax.get_ylim()[1] if ax.lines else 20.0] * len(blanks), "x", color="k",
                        label="no diffraction")
            ax.invert_yaxis()
            ax.set_ylabel("resolution (Å)")
            _legend(ax)
        else:
            for key in multi_keys:
                shown = [(n, r[key]) for n, r in zip(numbers, results) if r.get(key) is not None]
                ax.plot([n for n, _ in shown], [p for _, p in shown], ".", markersize=5,
                        color=MULTILATTICE_PROBABILITIES[key][1], label=MULTILATTICE_PROBABILITIES[key][0])
            ax.axhline(multilattice_threshold, color="0.6", linestyle="--", linewidth=1)
            ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel("p(multi-lattice)")
            _legend(ax)
        caveats = [(experimental or {}).get(key) for key in (["d_min"] if panel == "resolution" else multi_keys)]
        caveat = next((text for text in caveats if text), None)
        if caveat:
            ax.set_title(textwrap.fill(textwrap.shorten(f"EXPERIMENTAL model: {caveat}", 220, placeholder=" …"), 115),
                         fontsize=8, color="tab:red")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x_label)
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
