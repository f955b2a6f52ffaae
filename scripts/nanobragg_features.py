"""Shell-profile features of the nanoBragg validation images (res/), for evaluation only:

    python scripts/nanobragg_features.py ../shared/data/nanobragg_validation/res data/study/nanobragg_res

writes data/study/nanobragg_res_pooled.npz (a frame's four quadrants pooled) and _quadrants.npz.
"""
import json, sys, os
import numpy as np
from xrais.io import open_images
from xrais.conditioning import condition_frame
from xrais.models.profile import global_inputs, quadrant_inputs
from xrais.training.profile import FeatureSet

folder = sys.argv[1]; out = sys.argv[2]
labels = json.load(open(os.path.join(folder, "labels.json")))
feats, quads, globs, target, peak, bg, names = [], [], [], [], [], [], []
for name in sorted(labels):
    frame = next(iter(open_images([os.path.join(folder, name)], on_error="raise")))
    g = frame.geometry
    q = condition_frame(frame)
    table = np.tile([g.wavelength, g.distance, g.pixel_size, g.downsample], (len(q), 1))
    per = quadrant_inputs(q, table)[0].numpy()
    pooled = quadrant_inputs(q, table, pooled=True)[0].numpy()
    feats.append(pooled[0]); quads.append(per)
    globs.append(global_inputs(g.wavelength, g.distance, g.pixel_size, g.downsample))
    target.append(labels[name]["inv_d"]); peak.append(labels[name]["peak_target"]); bg.append(labels[name]["bg_scale"]); names.append(name)
    print(name, g.wavelength, g.distance, g.pixel_size, g.downsample, flush=True)
lab = {"peak_target": np.array(peak), "bg_scale": np.array(bg), "name": np.array(names)}
FeatureSet(np.stack(feats), np.stack(globs), np.array(target, np.float32), lab).save(out + "_pooled.npz")
n = len(names)
FeatureSet(np.concatenate(quads), np.repeat(np.stack(globs), 4, axis=0), np.repeat(np.array(target, np.float32), 4),
           {k: np.repeat(v, 4) for k, v in lab.items()}).save(out + "_quadrants.npz")
