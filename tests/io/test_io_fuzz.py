"""Fuzz test: real files of every format (or files written from real pixels where no real file
exists), mutated — bytes flipped, truncated, header numbers edited, dimension fields blown up,
HDF5 objects edited — must give Frames or one-line errors: never another exception, a crash, a
hang or unbounded memory.

Each format runs in a child process (io_fuzz_worker.py) under a 6 GiB address-space cap, so that a
crash in HDF5 or CBFlib fails this test with the file that caused it instead of killing pytest.
Deterministic (hypothesis ``derandomize=True``), about 30 s in all.
"""
import gzip
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from iohelpers import write_eiger, write_jungfrau
from xrais.io import Geometry, open_image
from xrais.io.mccd import write_mccd
from xrais.io.smv import write_smv

WORKER = pathlib.Path(__file__).with_name("io_fuzz_worker.py")
EXAMPLES = {"smv": 120, "minicbf": 80, "imgcif": 100, "mccd": 150, "nexus": 200, "expt": 80}
TIMEOUT_SECONDS = 240
PEAK_MEMORY_MIB = 3000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data, adsc_image):
    """Per format: seed files (mutated), companions (copied), and the files to read."""
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    real_pixels = open_image(adsc_image).pixels
    i03 = folder / "i03.cbf"
    i03.write_bytes(gzip.decompress((shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz").read_bytes()))
    mccd = folder / "rayonix.mccd"
    write_mccd(str(mccd), real_pixels[640:1664, 640:1664], Geometry(
        distance=180.0, wavelength=1.1, pixel_size=0.08854, beam_centre=(512.5, 510.0), shape=(1024, 1024)), bias=10)
    frames = np.stack([real_pixels[1000 + 50 * k:1256 + 50 * k, 1000:1256] for k in range(3)]).astype(np.uint16)
    mask = np.zeros((256, 256), np.uint32)
    mask[3, 4] = 1
    write_eiger(str(folder / "e_master.h5"), frames, beam_px=(128.0, 120.5), pixel_mask=mask)
    modules = np.stack([real_pixels[:128, :256], real_pixels[200:328, :256]])[None].repeat(2, axis=0).astype(np.int32)
    write_jungfrau(str(folder / "jf.h5"), modules, [(-100.0, 64.0), (-100.0, -70.0)])
    rayonix = shared_data / "rayonix340" / "hit-20181213155134902.cbf"
    real_model = json.loads((rayonix.parent / "experiments_000.json").read_text())
    real_model["imageset"][0]["images"] = [str(rayonix)]
    (folder / "real.expt").write_text(json.dumps(real_model, indent=2))
    small = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.1, beam_centre=(60.0, 50.0), shape=(100, 120))
    for number in (1, 2):
        write_smv(str(folder / f"img_{number:05d}.img"), real_pixels[:100, 120 * number:120 * (number + 1)], small)
    sweep = json.loads(json.dumps(real_model))
    sweep["imageset"] = [{"__id__": "ImageSequence", "template": "img_#####.img"}]
    sweep["scan"] = [{"image_range": [1, 2]}]
    sweep["experiment"][0]["scan"] = 0
    panel = sweep["detector"][0]["panels"][0]
    panel.update(origin=[-6.0, 5.0, -200.0], pixel_size=[0.1, 0.1], image_size=[120, 100])
    (folder / "sweep.expt").write_text(json.dumps(sweep, indent=2))
    return {
        "smv": {"seeds": {"adsc.img": str(adsc_image)}},
        "minicbf": {"seeds": {"i03.cbf": str(i03),
                              "i03.cbf.gz": str(shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz")}},
        "imgcif": {"seeds": {"cspad.cbf": str(shared_data / "thermolysin_cspad" / "idx-20130301060858401.cbf"),
                             "rayonix.cbf": str(rayonix)}},
        "mccd": {"seeds": {"rayonix.mccd": str(mccd)}},
        "nexus": {"seeds": {name: str(folder / name) for name in
                            ("e_master.h5", "e_data_000001.h5", "e_data_000002.h5", "jf.h5")},
                  "entry_points": ["e_master.h5", "jf.h5"]},
        "expt": {"seeds": {"real.expt": str(folder / "real.expt"), "sweep.expt": str(folder / "sweep.expt")},
                 "companions": {name: str(folder / name) for name in ("img_00001.img", "img_00002.img")}},
    }


@pytest.mark.parametrize("format_name", sorted(EXAMPLES))
def test_mutated_files_give_frames_or_clear_errors(format_name, corpus, tmp_path):
    manifest = dict(corpus[format_name], format=format_name, examples=EXAMPLES[format_name],
                    work=str(tmp_path / "work"), report=str(tmp_path / "report.json"))
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    current = tmp_path / "current.json"
    try:
        result = subprocess.run([sys.executable, str(WORKER), str(manifest_path)], capture_output=True, text=True,
                                timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{format_name}: reading hung; last example {current.read_text()} (files in {tmp_path / 'work'})")
    if result.returncode != 0:
        how = f"crashed (signal {-result.returncode})" if result.returncode < 0 else "failed"
        last = current.read_text() if current.exists() else "none"
        pytest.fail(f"{format_name}: fuzzing {how}; last example {last} (files in {tmp_path / 'work'})\n"
                    f"{result.stdout[-3000:]}{result.stderr[-6000:]}")
    report = json.loads(pathlib.Path(manifest["report"]).read_text())
    assert report["examples"] == EXAMPLES[format_name]
    assert report["error"] > 0 and report["peak_rss_mib"] < PEAK_MEMORY_MIB
