"""Helpers of the image-input tests: writers of realistic NXmx files (h5py only, the layout
DECTRIS and DLS use), and panel geometry from CBFlib's own geometry engine.

NeXus lab frame: McStas (beam along +z, y up); pixel directions of an EIGER-style module are
fast = −x, slow = −y, so a module whose pixel-(0, 0) corner sits at (bx·p, by·p, D) has the beam
at pixel (bx, by).
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import h5py
import hdf5plugin
import numpy as np
import pycbf

from xrais.io.assemble import PanelGeometry
from xrais.io.imgcif import READER as IMGCIF_READER

BITSHUFFLE_LZ4 = hdf5plugin.Bitshuffle(cname="lz4")


def _translation(group, name, value, vector, depends_on, units="m", offset=None, offset_units="m"):
    ds = group.create_dataset(name, data=value)
    ds.attrs["transformation_type"] = "translation"
    ds.attrs["units"] = units
    ds.attrs["vector"] = np.asarray(vector, dtype=float)
    ds.attrs["depends_on"] = depends_on
    if offset is not None:
        ds.attrs["offset"] = np.asarray(offset, dtype=float)
        ds.attrs["offset_units"] = offset_units
    return ds


def _rotation(group, name, angle_deg, vector, depends_on, offset=None):
    ds = group.create_dataset(name, data=angle_deg)
    ds.attrs["transformation_type"] = "rotation"
    ds.attrs["units"] = "deg"
    ds.attrs["vector"] = np.asarray(vector, dtype=float)
    ds.attrs["depends_on"] = depends_on
    if offset is not None:
        ds.attrs["offset"] = np.asarray(offset, dtype=float)
        ds.attrs["offset_units"] = "m"
    return ds


def _group(parent, name, nx_class):
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _skeleton(handle, wavelength, description, distance_mm, saturation):
    entry = _group(handle, "entry", "NXentry")
    entry["definition"] = "NXmx"
    instrument = _group(entry, "instrument", "NXinstrument")
    beam = _group(instrument, "beam", "NXbeam")
    beam.create_dataset("incident_wavelength", data=wavelength).attrs["units"] = "angstrom"
    detector = _group(instrument, "detector", "NXdetector")
    detector["description"] = description
    detector["depends_on"] = "/entry/instrument/detector/transformations/translation"
    if saturation is not None:
        detector["saturation_value"] = np.int32(saturation)
    transformations = _group(detector, "transformations", "NXtransformations")
    _translation(transformations, "translation", distance_mm * 1e-3, (0, 0, 1), ".")
    sample = _group(entry, "sample", "NXsample")
    sample["depends_on"] = "."
    return entry, detector


def _module(detector, name, origin, size, offset_m, pixel_m, fast=(-1, 0, 0), slow=(0, -1, 0), rotation_deg=0.0):
    module = _group(detector, name, "NXdetector_module")
    module["data_origin"] = np.asarray(origin, dtype=np.int32)
    module["data_size"] = np.asarray(size, dtype=np.int32)
    parent = "/entry/instrument/detector/transformations/translation"
    base = f"{module.name}/module_offset"
    if rotation_deg:
        _rotation(module, "module_rotation", rotation_deg, (0, 0, 1), parent, offset=offset_m)
        _translation(module, "module_offset", 0.0, (1, 0, 0), f"{module.name}/module_rotation")
    else:
        _translation(module, "module_offset", 0.0, (1, 0, 0), parent, offset=offset_m)
    _translation(module, "fast_pixel_direction", pixel_m, fast, base, offset=(0, 0, 0))
    _translation(module, "slow_pixel_direction", pixel_m, slow, base, offset=(0, 0, 0))
    return module


def write_eiger(master: str, frames: np.ndarray, *, wavelength=0.97625, distance_mm=200.0, beam_px=(100.5, 80.25),
                pixel_mm=0.075, description="Dectris EIGER X 4M", saturation: Optional[int] = 60000,
                pixel_mask: Optional[np.ndarray] = None, frames_per_file: int = 2, legacy_fields=True) -> list:
    """An EIGER-style master (``*_master.h5``) with one NXdetector_module and external
    ``*_data_NNNNNN.h5`` files of bitshuffle/LZ4 chunks (one chunk per frame). Returns the data files."""
    frames = np.asarray(frames)
    n, ns, nf = frames.shape
    stem = os.path.basename(master).replace("_master.h5", "")
    folder = os.path.dirname(master)
    data_files = []
    with h5py.File(master, "w") as handle:
        entry, detector = _skeleton(handle, wavelength, description, distance_mm, saturation)
        pixel_m = pixel_mm * 1e-3
        _module(detector, "module", (0, 0), (ns, nf), (beam_px[0] * pixel_m, beam_px[1] * pixel_m, 0), pixel_m)
        if pixel_mask is not None:
            detector.create_dataset("pixel_mask", data=pixel_mask.astype(np.uint32), **BITSHUFFLE_LZ4)
        if legacy_fields:
            detector.create_dataset("x_pixel_size", data=pixel_m).attrs["units"] = "m"
            detector.create_dataset("y_pixel_size", data=pixel_m).attrs["units"] = "m"
            detector.create_dataset("detector_distance", data=distance_mm * 1e-3).attrs["units"] = "m"
            detector.create_dataset("beam_center_x", data=beam_px[0]).attrs["units"] = "pixel"
            detector.create_dataset("beam_center_y", data=beam_px[1]).attrs["units"] = "pixel"
        data_group = _group(entry, "data", "NXdata")
        for k, start in enumerate(range(0, n, frames_per_file), start=1):
            name = f"{stem}_data_{k:06d}.h5"
            data_files.append(os.path.join(folder, name))
            with h5py.File(data_files[-1], "w") as data_handle:
                block = frames[start:start + frames_per_file]
                ds = data_handle.create_group("entry").create_group("data").create_dataset(
                    "data", data=block, chunks=(1, ns, nf), **BITSHUFFLE_LZ4)
                ds.attrs["image_nr_low"] = start + 1
                ds.attrs["image_nr_high"] = start + len(block)
            data_group[f"data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
    return data_files


def write_fields_only(path: str, frames: np.ndarray, *, wavelength=1.0, distance_mm=150.0, beam_px=(60.0, 50.0),
                      pixel_mm=0.075) -> None:
    """An older DECTRIS-style file: no modules, geometry only in detector_distance,
    beam_center_x/y and x_pixel_size; data in the same file."""
    with h5py.File(path, "w") as handle:
        entry = _group(handle, "entry", "NXentry")
        instrument = _group(entry, "instrument", "NXinstrument")
        beam = _group(instrument, "beam", "NXbeam")
        beam.create_dataset("incident_wavelength", data=wavelength).attrs["units"] = "angstrom"
        detector = _group(instrument, "detector", "NXdetector")
        detector.create_dataset("x_pixel_size", data=pixel_mm * 1e-3).attrs["units"] = "m"
        detector.create_dataset("detector_distance", data=distance_mm * 1e-3).attrs["units"] = "m"
        detector.create_dataset("beam_center_x", data=beam_px[0]).attrs["units"] = "pixel"
        detector.create_dataset("beam_center_y", data=beam_px[1]).attrs["units"] = "pixel"
        _group(entry, "data", "NXdata").create_dataset("data", data=frames, chunks=(1,) + frames.shape[1:])


def write_jungfrau(path: str, frames: np.ndarray, offsets_px: Sequence, *, wavelength=1.3, distance_mm=120.0,
                   pixel_mm=0.075, rotations_deg: Optional[Sequence[float]] = None, stacked=True,
                   description="JUNGFRAU 4M") -> None:
    """A JUNGFRAU-style file: modules of frames (n, modules, slow, fast) (``stacked``) or one 2-D
    frame with module hyperslabs side by side along slow; module m's pixel-(0, 0) corner at
    offsets_px[m] = (x, y) pixels from the beam (McStas x, y), optionally rotated about the beam."""
    frames = np.asarray(frames)
    n, n_modules, ns, nf = frames.shape
    pixel_m = pixel_mm * 1e-3
    rotations_deg = rotations_deg or [0.0] * n_modules
    with h5py.File(path, "w") as handle:
        entry, detector = _skeleton(handle, wavelength, description, distance_mm, None)
        for m, ((x, y), angle) in enumerate(zip(offsets_px, rotations_deg)):
            origin, size = ((m, 0, 0), (1, ns, nf)) if stacked else ((m * ns, 0), (ns, nf))
            _module(detector, f"ARRAY_D0M{m}", origin, size, (x * pixel_m, y * pixel_m, 0), pixel_m, rotation_deg=angle)
        data = frames if stacked else frames.reshape(n, n_modules * ns, nf)
        _group(entry, "data", "NXdata").create_dataset("data", data=data, chunks=(1,) + data.shape[1:],
                                                        **BITSHUFFLE_LZ4)


def cbflib_panels(path):
    """Reference panels of a CBF from CBFlib's own geometry engine: (the reader's raw panels, their
    PanelGeometry in the same order — pixel (0, 0) corner, unit axes —, name → the CBFlib detector
    object, whose get_pixel_coordinates_fs gives any pixel's lab position)."""
    handle = pycbf.cbf_handle_struct()
    handle.read_buffer(path.read_bytes(), pycbf.MSG_DIGEST | pycbf.CBF_PARSE_WIDE)
    raw = next(IMGCIF_READER.raw_panels(str(path)))
    shapes = dict(zip(raw.names, (p.shape for p in raw.pixels)))
    panels, engines = {}, {}
    for element in range(len(raw.names)):
        detector = handle.construct_detector(element)
        fast_axis = detector.get_detector_surface_axes(0)
        handle.find_category("array_structure_list")
        handle.find_column("axis_set_id")
        handle.find_row(fast_axis)
        try:
            handle.find_column("array_section_id")
            name = handle.get_value()
        except Exception:  # no sections: the panel is the whole array
            handle.find_column("array_id")
            name = handle.get_value()
        name = name.decode() if isinstance(name, bytes) else name
        origin = np.array(detector.get_pixel_coordinates_fs(0, 0))
        fast = np.array(detector.get_pixel_coordinates_fs(1, 0)) - origin
        slow = np.array(detector.get_pixel_coordinates_fs(0, 1)) - origin
        pitch = (float(np.linalg.norm(fast)), float(np.linalg.norm(slow)))
        panels[name] = PanelGeometry(tuple(origin), tuple(fast / pitch[0]), tuple(slow / pitch[1]), pitch,
                                     shapes[name], name)
        engines[name] = detector
    return raw, [panels[name] for name in raw.names], engines
