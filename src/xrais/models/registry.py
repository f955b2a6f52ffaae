"""Model registry: a name → weights file + architecture + model card.

A registered model is three files side by side:

* ``<name>.pt``: the network's state dict (``torch.save``; loaded with ``weights_only=True``);
* ``<name>.json``: kind, architecture, sha256 of the ``.pt``, input/output conventions, training
  summary;
* ``<name>.md``: the model card (human-readable).

Names are looked up in models registered in this process (:func:`register`), then in the folders of
the ``XRAIS_MODELS`` environment variable (``os.pathsep``-separated), then in the shipped weights
folder ``xrais/models/weights``. Anything else given to :func:`load` is a path to a ``.json`` or
``.pt`` file.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch

from ..io.errors import XraisError
from .evidence import EvidenceArchitecture, EvidenceNet
from .network import GEOMETRY_COLUMNS, Architecture, XraisNet
from .predictor import XraisModel
from .profile import ProfileArchitecture, ProfileNet

FORMAT = "xrais-model/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
ENVIRONMENT_VARIABLE = "XRAIS_MODELS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SUFFIXES = (".json", ".pt", ".md")
_REGISTERED: Dict[str, Path] = {}

log = logging.getLogger(__name__)

INPUT_CONVENTIONS = {
    "shape": [512, 512],
    "values": "floor(sqrt(N×N max-pool of the raw counts)) (xrais.conditioning.condition)",
    "beam": "at the outer corner of pixel (0, 0) of every quadrant",
    "dtype": "any numeric; scaled inside the network by architecture.input_scale",
    "geometry": {"columns": list(GEOMETRY_COLUMNS), "units": ["Å", "mm", "mm", "max-pool factor N"],
                 "used_by": "resolution models only"},
}
PROFILE_INPUT_CONVENTIONS = dict(
    INPUT_CONVENTIONS,
    representation=("per shell of s = 1/d (Å⁻¹) from the geometry: the histogram of the conditioned values, "
                    "read as coverage, background and spot-pixel fractions above photon thresholds "
                    "(xrais.models.profile); a frame's quadrants pooled"),
    geometry={"columns": list(GEOMETRY_COLUMNS), "units": ["Å", "mm", "mm", "max-pool factor N"]},
    dtype="integer conditioned values 0–255",
)
EVIDENCE_INPUT_CONVENTIONS = {
    "representation": ("the lattice evidence of a frame's spots (xrais.lattice.lattice_evidence): dispersion-"
                       "threshold spots at full resolution mapped to reciprocal space by the geometry and indexed "
                       "without a known cell (those in ice-ring bands that no lattice indexes left out), the beam "
                       "centre refined with the first lattice, further lattices of the first one's cell or another "
                       "(xrais.lattice.index_spots)"),
    "features": "architecture.features, in that order; standardised inside the network",
}
OUTPUTS = {
    "resolution": "1/d (Å⁻¹), clamped at 0 (0: no diffraction); d = 1/(1/d) Å; B = 4·d² + 12 Å²",
    "multilattice": "probability (0–1) that the quadrant (ResNet) or the frame (lattice evidence) shows "
                    "diffraction from several lattices",
}


#: Network families: the card's ``architecture.family`` → (architecture class, network class). The
#: paper's ResNet on conditioned quadrants (cards without a family), the shell-profile network
#: (:mod:`xrais.models.profile`) and the lattice-evidence network (:mod:`xrais.models.evidence`,
#: whole frames: :func:`load_network`, not :func:`load`).
FAMILIES = {"resnet": (Architecture, XraisNet), "profile": (ProfileArchitecture, ProfileNet),
            "evidence": (EvidenceArchitecture, EvidenceNet)}
NETWORKS = (XraisNet, ProfileNet, EvidenceNet)


class ModelError(XraisError):
    """A model cannot be found or loaded: the message names the file and the problem."""


def sha256_of(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _search_folders() -> List[Path]:
    extra = [Path(p) for p in os.environ.get(ENVIRONMENT_VARIABLE, "").split(os.pathsep) if p]
    return extra + [WEIGHTS_DIR]


def available() -> List[str]:
    """Names of the models that can be loaded by name (registered, ``XRAIS_MODELS``, shipped)."""
    names = set(_REGISTERED)
    for folder in _search_folders():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.json"))
    return sorted(names)


def register(name: str, path: Union[str, Path]) -> None:
    """Make a model (its ``.json``, or its ``.pt`` with the ``.json`` beside it) loadable by ``name``
    in this process. The files are checked when the model is loaded."""
    if not _NAME.match(name):
        raise ModelError(f"model name {name!r} must be letters, digits, '_', '-' or '.'")
    card_path = _card_path(Path(path))
    if not card_path.is_file():
        raise ModelError(f"{card_path}: no such model description file")
    _REGISTERED[name] = card_path


def _card_path(path: Path) -> Path:
    return path.with_suffix(".json") if path.suffix in _SUFFIXES else path


def locate(name_or_path: Union[str, Path]) -> Path:
    """The ``.json`` description of a model name or path (ModelError if there is none)."""
    text = os.fspath(name_or_path)
    if text in _REGISTERED:
        return _REGISTERED[text]
    if _NAME.match(text) and not text.endswith(_SUFFIXES):
        for folder in _search_folders():
            candidate = folder / f"{text}.json"
            if candidate.is_file():
                return candidate
        known = ", ".join(available()) or "none"
        raise ModelError(f"model {text!r} is not available (available: {known}); train one with xrais.train "
                         f"or give the path of a model's .json/.pt file")
    card_path = _card_path(Path(text))
    if not card_path.is_file():
        raise ModelError(f"{card_path}: no such model description file")
    return card_path


def read_card(name_or_path: Union[str, Path]) -> dict:
    """A model's description (the ``.json``), with ``path`` and ``weights_path`` added."""
    card_path = locate(name_or_path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{card_path}: cannot read the model description: {exc}") from None
    missing = [key for key in ("kind", "architecture", "weights", "sha256") if key not in card]
    if missing:
        raise ModelError(f"{card_path}: not an xrais model description (missing {', '.join(missing)})")
    card["path"] = str(card_path)
    card["weights_path"] = str(card_path.parent / card["weights"])
    return card


def load_network(name_or_path: Union[str, Path]) -> tuple:
    """(network on the CPU with the checked weights, card) of a registered model or model file."""
    card = read_card(name_or_path)
    weights = Path(card["weights_path"])
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file missing (described by {card['path']})")
    digest = sha256_of(weights)
    if digest != card["sha256"]:
        raise ModelError(f"{weights}: weights file corrupted or changed: sha256 {digest[:12]}… differs from "
                         f"{card['sha256'][:12]}… recorded in {card['path']}")
    family = card["architecture"].get("family", "resnet") if isinstance(card["architecture"], dict) else None
    if family not in FAMILIES:
        raise ModelError(f"{card['path']}: unknown network family {family!r} (known: {', '.join(FAMILIES)})")
    architecture_class, network_class = FAMILIES[family]
    try:
        architecture = architecture_class.from_dict(dict(card["architecture"], kind=card["kind"]))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{card['path']}: invalid architecture: {exc}") from None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files
        raise ModelError(f"{weights}: cannot read the weights: {exc}") from None
    network = network_class(architecture)
    if isinstance(state, dict) and hasattr(network_class, "stored_state"):  # a family's older names
        state = network_class.stored_state(state)
    problem = state_dict_mismatch(network, state)
    if problem:
        raise ModelError(f"{weights}: weights do not fit the architecture declared in {card['path']} "
                         f"({architecture.label}): {problem}")
    network.load_state_dict(state)
    return network, card


def state_dict_mismatch(network: torch.nn.Module, state) -> str:
    """A one-line description of how ``state`` differs from the network's parameters ("" if it fits)."""
    if not isinstance(state, dict):
        return f"expected a state dict, found {type(state).__name__}"
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(getattr(state[k], "shape", ())) != tuple(v.shape)]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            parts.append(f"{len(items)} {label} ({', '.join(items[:3])}{', …' if len(items) > 3 else ''})")
    return "; ".join(parts)


def load(name_or_path: Union[str, Path] = "resolution", device="auto", precision: str = "fp32",
         channels_last: bool = True, batch_size: int = 32) -> XraisModel:
    """Load a model for inference: a registered name ("resolution", "multilattice", …) or the path
    of a model's ``.json``/``.pt``. The weights' sha256 and their fit to the declared architecture
    are checked (:class:`ModelError` otherwise). device: "auto", "cpu", "cuda", "cuda:1"…"""
    network, card = load_network(name_or_path)
    if isinstance(network, EvidenceNet):
        raise ModelError(f"{card['path']}: a lattice-evidence model reads indexed frames, not quadrants: "
                         f"use it through the 'multilattice' predictor (or xrais.models.registry.load_network)")
    notice = experimental_notice(card)
    if notice:
        log.warning("model %s is experimental: %s (model card: %s)", card.get("name", card["path"]), notice,
                    Path(card["path"]).with_suffix(".md"))
    return XraisModel(network, card, device=device, precision=precision, channels_last=channels_last,
                      batch_size=batch_size)


def experimental_notice(card: dict) -> Optional[str]:
    """The first sentence of a card's limitations when they begin "experimental:" (a model short of
    its quality targets), without that word; else None."""
    limitations = str(card.get("training", {}).get("limitations", "")).strip()
    prefix = "experimental:"
    if not limitations.lower().startswith(prefix):
        return None
    return limitations[len(prefix):].split(". ")[0].strip().rstrip(".")


def unwrap(model):
    """The plain network (:class:`XraisNet`, :class:`ProfileNet`) inside an XraisModel,
    DistributedDataParallel or compiled module."""
    if isinstance(model, XraisModel):
        model = model.network
    while not isinstance(model, NETWORKS):
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"expected an xrais network, got {type(model).__name__}")
        model = inner
    return model


def export(model, path_or_name: Union[str, Path], card_fields: Optional[dict] = None) -> Path:
    """Write a network in the registry format: ``<stem>.pt``, ``<stem>.json`` and ``<stem>.md``.

    path_or_name: a bare name ("resolution") writes into the shipped weights folder; a path
    ("runs/r1/best" or "runs/r1/best.json") writes there. card_fields: what is known of the
    model (description, recipe, data, epochs, hardware, time, metrics…), stored under "training"
    and shown in the card. Returns the ``.json`` path.
    """
    network = unwrap(model)
    stem = _export_stem(path_or_name)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = stem.with_name(stem.name + ".pt")
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone() for k, v in network.state_dict().items()}
    partial = weights.with_name("." + weights.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, weights)
    from .. import __version__

    fields = dict(card_fields or {})
    architecture = network.architecture.as_dict()
    kind = architecture.pop("kind")
    card = {
        "format": FORMAT,
        "name": stem.name,
        "kind": kind,
        "description": fields.pop("description", f"xrais {kind} model, {network.architecture.label}"),
        "architecture": architecture,
        "parameters": sum(p.numel() for p in network.parameters()),
        "weights": weights.name,
        "sha256": sha256_of(weights),
        "input": {"profile": PROFILE_INPUT_CONVENTIONS, "evidence": EVIDENCE_INPUT_CONVENTIONS}.get(
            architecture.get("family"), INPUT_CONVENTIONS),
        "output": {"profile": OUTPUTS[kind] + "; with its standard deviation σ (Å⁻¹)",
                   "evidence": "probability (0–1) that the frame shows diffraction from several lattices"}.get(
            architecture.get("family"), OUTPUTS[kind]),
        "training": fields,
        "xrais_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    card_path = stem.with_name(stem.name + ".json")
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    stem.with_name(stem.name + ".md").write_text(model_card_markdown(card), encoding="utf-8")
    return card_path


def annotate(name_or_path: Union[str, Path], training: Optional[dict] = None,
             evaluation: Optional[tuple] = None) -> Path:
    """Add facts to a model's description and card after training (the weights are untouched).

    training: fields merged into the "training" section (e.g. the commands that reproduce the
    model, CPU inference time); evaluation: (label, {"source", "images", metrics...}) stored under
    "evaluations" (e.g. a held-out test set). Returns the ``.json`` path.
    """
    card_path = locate(name_or_path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if training:
        card.setdefault("training", {}).update(training)
    if evaluation:
        label, values = evaluation
        card.setdefault("evaluations", {})[label] = values
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    card_path.with_suffix(".md").write_text(model_card_markdown(card), encoding="utf-8")
    return card_path


def _export_stem(path_or_name: Union[str, Path]) -> Path:
    """Path without suffix of the files :func:`export` writes (bare names: the shipped weights folder)."""
    text = os.fspath(path_or_name)
    if _NAME.match(text) and not text.endswith(_SUFFIXES):
        return WEIGHTS_DIR / text
    path = Path(text)
    return path.with_suffix("") if path.suffix in _SUFFIXES else path


def model_card_markdown(card: dict) -> str:
    """The model card (Markdown) of a model description."""
    a = card["architecture"]
    training = card.get("training", {})
    metrics = training.get("validation_metrics", {})
    lines = [
        f"# xrais model `{card['name']}` ({card['kind']})",
        "",
        card.get("description", ""),
        "",
        "## Intended use",
        "",
        ("Predict the resolution (1/d, Å⁻¹) of a crystallographic diffraction image, with its σ (its 512×512 "
         "conditioned quadrants pooled into one shell profile, or each quadrant alone), from any flat detector, "
         "distance and wavelength (the geometry gives each pixel its 1/d)."
         if card["kind"] == "resolution" and a.get("family") == "profile" else
         "Predict the resolution (1/d, Å⁻¹) of each 512×512 conditioned quadrant of a crystallographic "
         "diffraction image, from any flat detector, distance and wavelength (the geometry enters the "
         "output layer)." if card["kind"] == "resolution" else
         "Predict the probability that a crystallographic diffraction image (a still, or a rotation frame of a "
         "wedge up to ~1°) shows diffraction from "
         "several lattices (cracked or split crystals, several crystals in the beam), from how well one lattice "
         "indexes its spots in reciprocal space; any flat detector, distance and wavelength."
         if a.get("family") == "evidence" else
         "Predict the probability that a 512×512 conditioned quadrant of a crystallographic diffraction "
         "image shows diffraction from several lattices (cracked crystals, several crystals in the beam)."),
        "Trained on physics-based simulations (nanoBragg-style); accuracy on real data depends on how "
        "well the simulations cover it (detector, background, crystal properties).",
        "",
        "## Architecture",
        "",
        *_architecture_lines(card),
        "",
        "## Inputs and outputs",
        "",
        (f"- Input: {card['input']['representation']}" if a.get("family") == "evidence" else
         f"- Input: {card['input']['values']}; beam {card['input']['beam']}"),
        f"- Output: {card['output']}",
        "",
        "## Training",
        "",
    ]
    lines += [f"- {key.replace('_', ' ')}: {_format_value(value)}" for key, value in training.items()
              if key not in ("validation_metrics", "commands")] or ["- (no training information recorded)"]
    commands = training.get("commands")
    if commands:
        lines += ["", "## Reproduce", "", "From the repository root, in the environment of `make setup`:", "",
                  "```bash", *([commands] if isinstance(commands, str) else commands), "```"]
    if metrics:
        lines += ["", "## Validation metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {_format_value(value)} |" for key, value in metrics.items()]
    for label, values in card.get("evaluations", {}).items():
        values = dict(values)
        source = values.pop("source", "")
        ranges = values.pop("by_range", None)
        splits = values.pop("by_split", None)
        lines += ["", f"## Evaluation: {label}", "", f"Data: {source}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {_format_value(value)} |" for key, value in values.items()]
        if ranges:
            lines += ["", "Per range of the label 1/d (bias: mean of prediction − label; negative: resolution "
                      "underestimated):", "", "| label 1/d (Å⁻¹) | images | accuracy | bias (Å⁻¹) | MAE (Å⁻¹) |",
                      "|---|---|---|---|---|"]
            lines += [f"| {row['low']:.2f}–{'∞' if row['high'] is None else format(row['high'], '.2f')} | {row['n']} "
                      f"| {row['accuracy']:.3f} | {row['bias']:+.3f} | {row['mae']:.3f} |" for row in ranges]
        if splits:
            lines += ["", "Per range of the smallest misorientation between the lattices:", "",
                      "| lattice split | images | accuracy | mean probability |", "|---|---|---|---|"]
            lines += [f"| {row['label']} | {row['n']} | {row['accuracy']:.3f} | {row['mean_probability']:.3f} |"
                      for row in splits]
    lines += ["", "## Files", "", f"- weights: `{card['weights']}` (sha256 `{card['sha256']}`)",
              f"- xrais {card['xrais_version']}, written {card['created']}", ""]
    return "\n".join(lines)


def _architecture_lines(card: dict) -> List[str]:
    a = card["architecture"]
    if a.get("family") == "evidence":
        members = a.get("members", 1)
        return [f"- Lattice evidence (xrais.models.evidence): the features {', '.join(a['features'])}, "
                f"standardised, a tanh layer of {a['hidden']}, a logit"
                + (f"; {members} such networks trained from different initial weights, their probabilities "
                   "averaged" if members > 1 else ""), f"- {card['parameters']:,} parameters"]
    if a.get("family") == "profile":
        return [f"- Shell profile (xrais.models.profile): per shell of s = 1/d, coverage, background and the "
                f"fractions of spot pixels above photon thresholds; four convolutions of {a['channels']} "
                f"channels along s (shells pooled 4×), a fully connected layer of {a['hidden']} (dropout "
                f"{a['dropout']:g}), outputs the mean 1/d and its σ "
                f"(at least {a['min_sigma']:g} Å⁻¹), trained by the Gaussian likelihood",
                f"- {card['parameters']:,} parameters"]
    return [f"- ResNet-{a['depth']}, width ×{a['width']:g}, {a['norm']} normalisation, "
            + ("two-channel stem: the image and each pixel's distance from the beam" if a.get("coordinates")
               else "single-channel stem"),
            f"- FC1 {a['features']} → {a['hidden']} (ReLU{', dropout %g' % a['dropout'] if a['dropout'] else ''}), "
            f"FC2 {a['hidden']} → 1",
            f"- {card['parameters']:,} parameters; inputs scaled by {a['input_scale']:g}"
            + (f"; radius scale {a['radius_scale']:g} downsampled px" if card["kind"] == "resolution" else "")]


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(v) for v in value)
    return str(value)
