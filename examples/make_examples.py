"""Make the example images shipped inside the package (src/xrais/examples) with xrais.simulate.

    python examples/make_examples.py

Five PILATUS 2M images (gzipped miniCBF, whole detector) from the two recipes: a 1.5 Å and a 3.3 Å
crystal and a blank, none with read noise (resolution recipe, seed 3496), two lattices 2.7° apart
and a single lattice (multi-lattice recipe, seed 25); their true labels go to ``examples.json``. Seeds were chosen by
scanning the recipes for that mix of contents.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "..", "src", "xrais", "examples")
RUNS = (("resolution", 3496, 3), ("multilattice", 25, 2))
DETECTOR = "PILATUS 2M"


def main():
    from xrais.sim.dataset import read_labels, shard_paths

    os.makedirs(TARGET, exist_ok=True)
    truth = []
    with tempfile.TemporaryDirectory() as work:
        for recipe, seed, count in RUNS:
            folder = os.path.join(work, recipe)
            subprocess.run([os.path.join(os.path.dirname(sys.executable), "xrais.simulate"), f"recipe={recipe}",
                            f"n_images={count}", f"shard_size={count}", f"seed={seed}", f"detector={DETECTOR}",
                            f"output.raw_cbf={count}", "output.raw_whole_detector=True", f"output.directory={folder}",
                            "output.log=None"], check=True)
            labels = read_labels(shard_paths(folder))
            for index in range(count):
                name = f"{recipe}_{index:07d}.cbf"
                shipped = f"example_{recipe}_{index}.cbf.gz"
                with open(os.path.join(folder, "raw", name), "rb") as source, \
                        gzip.open(os.path.join(TARGET, shipped), "wb", compresslevel=9) as target:
                    shutil.copyfileobj(source, target)
                truth.append({"image": shipped, "recipe": recipe, "seed": seed, "index": index,
                              **{key: _plain(labels[key][index]) for key in (
                                  "resolution", "inverse_d", "b_factor", "n_lattices", "is_multi", "blank", "distance",
                                  "wavelength", "detector", "background_scale", "parasitic")}})
    with open(os.path.join(TARGET, "examples.json"), "w", encoding="utf-8") as handle:
        json.dump({"images": truth, "made_by": "examples/make_examples.py (xrais.simulate)"}, handle, indent=1)
    for row in truth:
        print(row["image"], row["resolution"], "lattices:", row["n_lattices"])


def _plain(value):
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


if __name__ == "__main__":
    main()
