"""What the resolution network sees on measured frames beside what it saw in training: per channel
of the shell profile, how far the frames' mean profile lies from simulated quadrants of the same
detector and a similar resolution, in the simulated images' standard deviations
(:func:`xrais.training.profile.feature_gap`). A gap of several σ is an effect the simulation or the
pipeline lacks.

    python scripts/resolution_feature_gap.py --simulated data/resolution_v6 --detector "PILATUS 6M" --stills \\
        --inverse-d 0.5 0.7 --frames ../shared/data/thaumatin_grid/thau_3_2_000[1-6].cbf.bz2 \\
        --json docs/resolution_feature_gap.json

The frames' quadrants are pooled into one profile, as the ``resolution`` predictor pools them (all
four here; the predictor leaves out quadrants of too little image data); the simulated images are
single quadrants (their shell-size channel therefore reads a quarter of a
pooled frame's pixels). Simulated features are cached in data/study/feature_gap_cache.
"""
import argparse
import json
import os
import shlex
import sys

import numpy as np

from xrais.conditioning import condition_frame
from xrais.io import open_images
from xrais.models.predictor import geometry_tensor
from xrais.models.profile import quadrant_inputs
from xrais.io.errors import XraisError
from xrais.training.data import open_shards
from xrais.training.profile import FeatureSet, cached_features, feature_gap, shard_features

CACHE = "data/study/feature_gap_cache"


def frame_features(paths) -> FeatureSet:
    """Pooled shell-profile features of measured frames (all their quadrants)."""
    features, globals_ = [], []
    for frame in open_images(paths, on_error="raise"):
        quadrants = condition_frame(frame)
        table = geometry_tensor(frame.geometry, len(quadrants)).numpy()  # the predictor's own table
        f, inputs = quadrant_inputs(quadrants, table, pool=np.ones(len(quadrants), bool), per_quadrant=False)
        features.append(f.numpy()[0])
        globals_.append(inputs.numpy()[0])
    return FeatureSet(np.stack(features), np.stack(globals_), np.zeros(len(features), np.float32), {})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulated", nargs="+", required=True, help="shard folders of a resolution recipe")
    parser.add_argument("--frames", nargs="+", required=True, help="measured image files")
    parser.add_argument("--detector", help="simulated images of this detector only (catalogue name)")
    parser.add_argument("--inverse-d", nargs=2, type=float, default=(0.0, 1.0), metavar=("LOW", "HIGH"),
                        help="simulated images whose label 1/d (Å⁻¹) lies in [LOW, HIGH)")
    parser.add_argument("--stills", action="store_true", help="simulated stills without ice only")
    parser.add_argument("--top", type=int, default=3, help="shells listed per channel")
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args(argv)
    try:
        return report(parser, args)
    except XraisError as exc:  # a missing or unreadable image or shard: one line naming it
        parser.error(str(exc))


def report(parser, args) -> int:
    os.makedirs(CACHE, exist_ok=True)
    shards = open_shards(args.simulated, "resolution")
    name = "_".join(os.path.normpath(f).strip(os.sep).replace(os.sep, "_") for f in args.simulated)
    simulated = cached_features(os.path.join(CACHE, name + ".npz"), len(shards), lambda: shard_features(shards))
    chosen = (simulated.target >= args.inverse_d[0]) & (simulated.target < args.inverse_d[1])
    if args.detector:
        chosen &= simulated.labels["detector"].astype(str) == args.detector
    if args.stills:
        if "rotation_wedge_deg" not in simulated.labels:
            parser.error("--stills: the shards record no rotation wedge (a recipe before resolution v6)")
        chosen &= (simulated.labels["rotation_wedge_deg"] == 0) & (simulated.labels.get("ice_um", 0) == 0)
    if chosen.sum() < 2:
        parser.error(f"only {int(chosen.sum())} simulated images match the choice")
    rows = feature_gap(frame_features(args.frames), simulated.subset(np.flatnonzero(chosen)), args.top)
    for row in rows:
        shells = ", ".join(f"s {c['s']:.3f}: z {c['z']:+.1f} ({c['measured']:.2f} vs {c['simulated']:.2f})"
                           for c in row["largest"])
        print(f"{row['name']:<42} mean |z| {row['mean_abs_z']:4.1f}   {shells}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"command": shlex.join(["python", "scripts/resolution_feature_gap.py"] + sys.argv[1:]),
                       "simulated_images": int(chosen.sum()), "frames": [os.path.basename(f) for f in args.frames],
                       "channels": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
