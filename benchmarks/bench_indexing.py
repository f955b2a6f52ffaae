"""Indexing alone on every flat-detector frame of ``../shared/data`` (measured frames, the nanoBragg
stills and rotation frames): each frame's time and lattices, written to JSON, and two such files
compared — how an indexing change moves the time and which frames it indexes differently.

    python benchmarks/bench_indexing.py OUT.json [--compare BEFORE.json]

Spots are found once per frame (not timed); the indexing (``xrais.lattice.index_spots``: basis
search, geometry refinement, further lattices) is timed once after a warm-up, on one numba thread.
To measure an earlier commit, run the same command with its source first on the path
(``git worktree add /tmp/old <commit>; PYTHONPATH=/tmp/old/src python benchmarks/bench_indexing.py
old.json``), then this one with ``--compare old.json``. Frames a reader refuses (the curved
PILATUS 12M) are left out with their one-line reason.
"""
import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one core, before numba loads

import argparse
import glob
import json
import time

import numpy as np

SHARED = os.path.join("..", "shared", "data")
PATTERNS = ("image_examples/*.cbf.gz", "thermolysin_cspad/*.cbf", "thaumatin_grid/*.cbf.bz2",
            "nanobragg_validation/ml/*.cbf.bz2", "nanobragg_rotation/ml/*.cbf.bz2")


def measure() -> dict:
    """{frame name: {"ms", "spots", "lattices": [[spots indexed, [a, b, c, α, β, γ]], …]}}."""
    import xrais
    from xrais.lattice import index_spots
    from xrais.spotfinder import find_spots

    rows = {}
    for path in [p for pattern in PATTERNS for p in sorted(glob.glob(os.path.join(SHARED, pattern)))]:
        name = os.path.basename(path)
        try:
            frame = xrais.open_image(path)
        except xrais.ImageError as error:
            print(f"{name}: left out: {error}")
            continue
        spots = find_spots(frame.pixels, frame.mask, frame.geometry)
        index_spots(spots, frame.geometry)
        started = time.perf_counter()
        result = index_spots(spots, frame.geometry)
        rows[name] = {"ms": 1e3 * (time.perf_counter() - started), "spots": len(spots),
                      "lattices": [[int(lattice.n_indexed), [round(float(x), 2) for x in lattice.cell]]
                                   for lattice in result.lattices]}
        print(f"{name:<34} {len(spots):5d} spots {rows[name]['ms']:7.1f} ms  lattices "
              f"{[n for n, _ in rows[name]['lattices']]}")
    return rows


def compare(before: dict, after: dict) -> None:
    """Median and p95 time of each, and the frames whose lattices differ."""
    names = [name for name in after if name in before]
    for label, rows in (("before", before), ("after", after)):
        times = [rows[name]["ms"] for name in names]
        print(f"{label}: {len(names)} frames, median {np.median(times):.0f} ms, p95 {np.percentile(times, 95):.0f} ms")
    counts = {name: ([n for n, _ in before[name]["lattices"]], [n for n, _ in after[name]["lattices"]])
              for name in names}
    differ = [name for name, (old, new) in counts.items() if old != new]
    number = [name for name, (old, new) in counts.items() if len(old) != len(new)]
    first = [name for name, (old, new) in counts.items()
             if bool(old) != bool(new) or (old and abs(old[0] - new[0]) > 0.03 * old[0])]
    print(f"lattices' spot counts differ on {len(differ)} frames; the number of lattices on {len(number)}: "
          f"{', '.join(number)}; the first lattice by more than 3 % on {len(first)}: {', '.join(first)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="JSON of each frame's time and lattices")
    parser.add_argument("--compare", help="an earlier run's JSON, compared with this one")
    args = parser.parse_args()
    rows = measure()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as stream:
        json.dump(rows, stream, indent=1)
    if args.compare:
        with open(args.compare) as stream:
            compare(json.load(stream), rows)


if __name__ == "__main__":
    main()
