"""Example images shipped with xrais (simulated with xrais.simulate; see examples/make_examples.py in
the source tree): five PILATUS 2M miniCBF images with their true labels in examples.json."""
import json
import os
from typing import Dict, List

FOLDER = os.path.dirname(os.path.abspath(__file__))


def paths() -> List[str]:
    """Paths of the example images, sorted."""
    return sorted(os.path.join(FOLDER, name) for name in os.listdir(FOLDER) if name.endswith(".cbf.gz"))


def truth() -> Dict[str, dict]:
    """True labels of each example image (by file name): resolution (Å), n_lattices, blank…"""
    with open(os.path.join(FOLDER, "examples.json"), encoding="utf-8") as handle:
        return {row["image"]: row for row in json.load(handle)["images"]}
