"""Run by libtbx when xrais lives as a module in a cctbx/DIALS source build (modules/xrais):
install it as an editable Python package into that build's Python, without touching the
build's own dependencies (numpy, h5py… come from its conda environment)."""
import subprocess
import sys

import libtbx.load_env

subprocess.run(
    [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", libtbx.env.dist_path("xrais")],
    check=True,
)
