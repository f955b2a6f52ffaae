"""Shell-profile features of the nanoBragg validation images (res/), for evaluation only:

    python scripts/nanobragg_features.py ../shared/data/nanobragg_validation/res data/study/nanobragg_res
    python scripts/nanobragg_features.py ../shared/data/nanobragg_rotation/res data/study/nanobragg_rot

writes data/study/nanobragg_res_pooled.npz (a frame's four quadrants pooled) and _quadrants.npz.
"""
import json, sys, os
import numpy as np
from xrais.io import open_images
from xrais.conditioning import condition_frame
from xrais.models.profile import quadrant_inputs
from xrais.training.profile import FeatureSet

folder = sys.argv[1]; out = sys.argv[2]
labels = json.load(open(os.path.join(folder, "labels.json")))
features, globals_, names = [], [], []
for name in sorted(labels):
    frame = next(iter(open_images([os.path.join(folder, name)], on_error="raise")))
    g = frame.geometry
    q = condition_frame(frame)
    table = np.tile([g.wavelength, g.distance, g.pixel_size, g.downsample], (len(q), 1))
    f, inputs = quadrant_inputs(q, table, pool=np.ones(len(q), bool))  # rows: the quadrants, then pooled
    features.append(f.numpy()); globals_.append(inputs.numpy()); names.append(name)
    print(name, g.wavelength, g.distance, g.pixel_size, g.downsample, flush=True)
target = np.array([labels[n]["inv_d"] for n in names], np.float32)
lab = {"peak_target": np.array([labels[n]["peak_target"] for n in names]),
       "bg_scale": np.array([labels[n]["bg_scale"] for n in names]), "name": np.array(names),
       # rotation frames (nanobragg_rotation): the wedge and whether ice rings are on the frame
       "ice": np.array([bool(labels[n].get("ice", {}).get("present", False)) for n in names]),
       "osc_deg": np.array([float(labels[n].get("osc_deg") or 0.0) for n in names])}
FeatureSet(np.stack([f[-1] for f in features]), np.stack([g[-1] for g in globals_]), target, lab).save(out + "_pooled.npz")
FeatureSet(np.concatenate([f[:-1] for f in features]), np.concatenate([g[:-1] for g in globals_]), np.repeat(target, 4),
           {k: np.repeat(v, 4) for k, v in lab.items()}).save(out + "_quadrants.npz")
