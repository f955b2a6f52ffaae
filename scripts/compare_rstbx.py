"""xrais's indexing beside cctbx's own DPS indexing (``rstbx.dps_core``, the 1-D FFT method xrais
follows) on the same spots of the measured frames in ``../shared/data``: cell, share of spots one
lattice indexes, time.

    python scripts/compare_rstbx.py [--shared ../shared/data] [--output data/rstbx_comparison.npz]

cctbx cannot be imported into a process that has loaded numba's LLVM (xrais's spot finder and
indexing), so the script runs twice: ``--stage xrais`` (spots, xrais's indexing; written to the
``.npz``) and ``--stage rstbx`` (DPS on the same scattering vectors, with xrais's longest cell edge
and DPS's own 0.029 rad sampling), each in a child process, then prints the table. Needs the
``sim`` extra (cctbx-base).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

FRAMES = ("image_examples/DLS_I03_smargon_0001.cbf.gz", "image_examples/dlsnxs2cbf_therm_0001.cbf.gz",
          "thermolysin_cspad/idx-20130301060858401.cbf", "thermolysin_cspad/idx-20130301060858701.cbf",
          "thermolysin_cspad/idx-20130301060858801.cbf", "thaumatin_grid/thau_3_2_0001.cbf.bz2",
          "thaumatin_grid/thau_3_2_0003.cbf.bz2", "thaumatin_grid/thau_3_2_0009.cbf.bz2",
          "thaumatin_grid/thau_3_2_0014.cbf.bz2")
#: Largest |r·t − round| of an indexed spot, for both (xrais's default tolerance).
TOLERANCE = 0.2


def xrais_stage(shared: str, output: str) -> None:
    import xrais
    from xrais.lattice import index_lattices, indexing_input
    from xrais.spotfinder import find_spots

    rows = {"name": [], "offsets": [0], "vectors": [], "max_cell": [], "cell": [], "fraction": [], "seconds": []}
    for name in FRAMES:
        frame = xrais.open_image(os.path.join(shared, name))
        vectors, intensities, on_ice_ring = indexing_input(find_spots(frame.pixels, frame.mask, frame.geometry),
                                                           frame.geometry)
        order = np.argsort(-intensities, kind="stable")
        vectors, on_ice_ring = vectors[order], on_ice_ring[order]  # strongest first, as both search
        started = time.perf_counter()
        result = index_lattices(vectors, on_ice_ring=on_ice_ring)  # the header's geometry, as DPS sees it
        rows["seconds"].append(time.perf_counter() - started)
        rows["name"].append(os.path.basename(name))
        rows["vectors"].append(vectors)
        rows["offsets"].append(rows["offsets"][-1] + len(vectors))
        rows["max_cell"].append(result.max_cell or 0.0)
        rows["cell"].append(result.lattices[0].cell if result.lattices else (np.nan,) * 6)
        # of all the spots given, as for DPS (the ice-band spots no lattice indexes count as unindexed)
        rows["fraction"].append(result.lattices[0].n_indexed / len(vectors) if result.lattices else 0.0)
    np.savez(output, name=np.array(rows["name"]), offsets=np.array(rows["offsets"]),
             vectors=np.concatenate(rows["vectors"]), max_cell=np.array(rows["max_cell"]),
             xrais_cell=np.array(rows["cell"]), xrais_fraction=np.array(rows["fraction"]),
             xrais_seconds=np.array(rows["seconds"]))


def rstbx_stage(output: str) -> None:
    from rstbx.dps_core import dps_core
    from rstbx.dps_core.basis_choice import SelectBasisMetaprocedure
    from rstbx.dps_core.sampling import hemisphere_shortcut
    from scitbx import matrix
    from scitbx.array_family import flex

    data = dict(np.load(output))
    cells, fractions, seconds = [], [], []
    for i in range(len(data["name"])):
        vectors = data["vectors"][data["offsets"][i]:data["offsets"][i + 1]]
        started = time.perf_counter()
        try:
            core = dps_core()
            core.setMaxcell(float(data["max_cell"][i]) or 100.0)
            core.setXyzData(flex.vec3_double([tuple(v) for v in vectors]))
            hemisphere_shortcut(ai=core, characteristic_sampling=0.029, max_cell=float(data["max_cell"][i]) or 100.0)
            SelectBasisMetaprocedure(core)
            orientation = core.getOrientation()
            direct = np.array(matrix.sqr(orientation.direct_matrix()).as_list_of_lists())  # rows a, b, c (Å)
            fractional = vectors @ direct.T
            fractions.append(float((np.abs(fractional - np.rint(fractional)).max(axis=1) <= TOLERANCE).mean()))
            cells.append(orientation.unit_cell().minimum_cell().parameters())
        except Exception as exc:  # DPS finds no basis: reported as such
            print(f"{data['name'][i]}: rstbx: {type(exc).__name__}: {exc}")
            fractions.append(0.0)
            cells.append((np.nan,) * 6)
        seconds.append(time.perf_counter() - started)
    data.update(rstbx_cell=np.array(cells), rstbx_fraction=np.array(fractions), rstbx_seconds=np.array(seconds))
    np.savez(output, **data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--output", default="data/rstbx_comparison.npz")
    parser.add_argument("--stage", choices=("xrais", "rstbx"))
    args = parser.parse_args()
    if args.stage == "xrais":
        return xrais_stage(args.shared, args.output)
    if args.stage == "rstbx":
        return rstbx_stage(args.output)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    for stage in ("xrais", "rstbx"):  # each in its own process (module docstring)
        subprocess.run([sys.executable, __file__, "--stage", stage, "--shared", args.shared, "--output", args.output],
                       check=True)
    data = np.load(args.output)
    print(f"{'frame':<30} {'spots':>5}  {'xrais cell (Å)':<22} {'indexed':>7} {'s':>5}   {'rstbx DPS cell (Å)':<22} "
          f"{'indexed':>7} {'s':>5}")
    for i, name in enumerate(data["name"]):
        n = data["offsets"][i + 1] - data["offsets"][i]
        cell = " × ".join(f"{v:.1f}" for v in data["xrais_cell"][i][:3])
        theirs = " × ".join(f"{v:.1f}" for v in data["rstbx_cell"][i][:3])
        print(f"{name:<30} {n:5d}  {cell:<22} {data['xrais_fraction'][i]:7.2f} {data['xrais_seconds'][i]:5.2f}   "
              f"{theirs:<22} {data['rstbx_fraction'][i]:7.2f} {data['rstbx_seconds'][i]:5.2f}")


if __name__ == "__main__":
    main()
