"""NeXus/NXmx reader: EIGER-style master + external bitshuffle/LZ4 data files, JUNGFRAU-style
multi-module files, the legacy geometry fields, and damaged series."""
import math
import os

import h5py
import numpy as np
import pytest

from iohelpers import write_eiger, write_fields_only, write_jungfrau
from xrais.io import Frame, FrameError, ImageError, detectors, open_image, open_images

EIGER_4M = detectors.get("EIGER 4M")


@pytest.fixture(scope="module")
def eiger_frames():
    """Three EIGER 4M frames: Poisson background, module gaps at 0xFFFF, one saturated pixel."""
    rng = np.random.default_rng(7)
    frames = rng.poisson(2.0, (3,) + EIGER_4M.shape).astype(np.uint16)
    frames[:, EIGER_4M.gap_mask()] = 0xFFFF
    frames[1, 100, 200] = 61000
    return frames


@pytest.fixture(scope="module")
def eiger_series(tmp_path_factory, eiger_frames):
    folder = tmp_path_factory.mktemp("eiger")
    master = folder / "insulin_1_master.h5"
    dead = np.zeros(EIGER_4M.shape, np.uint32)
    dead[10, 20] = 1
    dead[2000, 30] = 8
    write_eiger(str(master), eiger_frames, beam_px=(1035.5, 1080.25), pixel_mask=dead)
    return master


def _copy_series(source_master, folder):
    for name in os.listdir(source_master.parent):
        (folder / name).write_bytes((source_master.parent / name).read_bytes())
    return folder / source_master.name


def test_eiger_series_frames_geometry_and_masks(eiger_series, eiger_frames, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # external links resolve from the master's folder, not the cwd
    frames = list(open_images(eiger_series, on_error="raise"))
    assert [f.index for f in frames] == [0, 1, 2]
    for frame, expected in zip(frames, eiger_frames):
        np.testing.assert_array_equal(frame.pixels, expected)
        g = frame.geometry
        assert g.distance == pytest.approx(200.0) and g.wavelength == pytest.approx(0.97625)
        assert g.beam_centre == pytest.approx((1035.5, 1080.25)) and g.pixel_size == pytest.approx(0.075)
        assert g.detector == "EIGER 4M" and g.downsample == 2 and g.shape == EIGER_4M.shape
        assert frame.metadata["multi_frame"] and frame.label == f"{eiger_series}:{frame.index}"
    expected_mask = EIGER_4M.gap_mask().copy()
    expected_mask[10, 20] = expected_mask[2000, 30] = True
    np.testing.assert_array_equal(frames[0].mask, expected_mask)
    assert frames[1].mask[100, 200] and frames[1].mask.sum() == expected_mask.sum() + 1  # above saturation_value


def test_a_corrupt_chunk_costs_only_its_frame(eiger_series, tmp_path):
    master = _copy_series(eiger_series, tmp_path)
    data_file = tmp_path / "insulin_1_data_000001.h5"
    with h5py.File(data_file, "r") as handle:
        chunk = handle["/entry/data/data"].id.get_chunk_info(1)
    content = bytearray(data_file.read_bytes())
    content[chunk.byte_offset + 12:chunk.byte_offset + chunk.size] = os.urandom(chunk.size - 12)
    data_file.write_bytes(bytes(content))
    items = list(open_images(master, on_error="yield"))
    assert [type(item) for item in items] == [Frame, FrameError, Frame]
    assert items[1].index == 1 and "cannot read or decompress frame 1 of data_000001" in items[1].message
    assert [f.index for f in open_images(master)] == [0, 2]


def test_a_missing_data_file_costs_only_its_frames(eiger_series, tmp_path):
    master = _copy_series(eiger_series, tmp_path)
    (tmp_path / "insulin_1_data_000002.h5").unlink()
    items = list(open_images(master, on_error="yield"))
    assert [type(item) for item in items] == [Frame, Frame, FrameError]
    assert "insulin_1_data_000002.h5" in items[2].message
    with pytest.raises(ImageError, match="cannot open image data data_000002"):
        list(open_images(master, on_error="raise"))


def test_folders_give_the_series_once_and_data_files_point_to_their_master(eiger_series):
    assert len(list(open_images(eiger_series.parent))) == 3
    with pytest.raises(ImageError, match="a data file\\? open its master file"):
        open_image(eiger_series.parent / "insulin_1_data_000001.h5")


def test_legacy_geometry_fields_are_used_without_modules(tmp_path):
    path = tmp_path / "old.h5"
    frames = np.random.default_rng(0).poisson(1, (2, 120, 160)).astype(np.uint32)
    write_fields_only(str(path), frames, wavelength=1.1, distance_mm=150.0, beam_px=(60.5, 50.0))
    frames_read = list(open_images(path, on_error="raise"))
    g = frames_read[1].geometry
    assert (g.distance, g.wavelength, *g.beam_centre, g.pixel_size) == pytest.approx((150.0, 1.1, 60.5, 50.0, 0.075))
    np.testing.assert_array_equal(frames_read[1].pixels, frames[1])


def test_no_wavelength_asks_for_the_override(eiger_series, tmp_path):
    master = _copy_series(eiger_series, tmp_path)
    with h5py.File(master, "r+") as handle:
        del handle["/entry/instrument/beam/incident_wavelength"]
    with pytest.raises(ImageError, match="header has no wavelength; give it with geometry.wavelength=<Å>"):
        open_image(master)
    assert open_image(master, geometry={"wavelength": 1.2}).geometry.wavelength == 1.2


def _jungfrau_frames(n_modules=4, shape=(64, 128)):
    """Two frames; frame 0 encodes each pixel's module/slow/fast in its value."""
    m, s, f = np.indices((n_modules,) + shape)
    first = 1 + m * 1_000_000 + s * 1000 + f
    second = np.random.default_rng(3).poisson(3, first.shape)
    return np.stack([first, second]).astype(np.int32)


OFFSETS = [(-140.0, 70.0), (-140.0, -2.0), (10.0, 70.0), (10.0, -2.0)]


def _two_theta_error(frame, rotations, distance=120.0, pixel=0.075):
    """Largest |2θ(image pixel) − 2θ(the module pixel it shows)| in units of one pixel's angle."""
    covered = ~frame.mask
    values = frame.pixels[covered].astype(np.int64) - 1
    m, s, f = values // 1_000_000, (values // 1000) % 1000, values % 1000
    worst = 0.0
    for module, ((x, y), angle) in enumerate(zip(OFFSETS, rotations)):
        here = m == module
        c, sn = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        local = np.stack([-(f[here] + 0.5) * pixel, -(s[here] + 0.5) * pixel])  # fast = −x, slow = −y
        position_x = x * pixel + c * local[0] - sn * local[1]
        position_y = y * pixel + sn * local[0] + c * local[1]
        true = np.arctan(np.hypot(position_x, position_y) / distance)
        j, i = np.nonzero(covered)
        j, i = j[here], i[here]
        b = frame.geometry.beam_centre
        image = np.arctan(np.hypot(i + 0.5 - b[0], j + 0.5 - b[1]) * frame.geometry.pixel_size / frame.geometry.distance)
        worst = max(worst, float(np.max(np.abs(true - image))) / (pixel / distance))
    return worst


@pytest.mark.parametrize("stacked", [True, False])
def test_jungfrau_modules_are_assembled_with_gaps_masked(tmp_path, stacked):
    path = tmp_path / "jf.h5"
    frames = _jungfrau_frames()
    write_jungfrau(str(path), frames, OFFSETS, stacked=stacked)
    first, second = list(open_images(path, on_error="raise"))
    g = first.geometry
    assert g.shape == (136, 278) and g.beam_centre == pytest.approx((10.0, 70.0))
    assert g.distance == pytest.approx(120.0) and g.wavelength == pytest.approx(1.3)
    assert first.metadata["panels"] == 4 and second.index == 1
    assert first.mask.sum() == 136 * 278 - 4 * 64 * 128  # exactly the gaps
    assert set(np.unique(first.pixels[~first.mask])) == set(np.unique(frames[0]))  # every pixel shown once
    assert _two_theta_error(first, [0, 0, 0, 0]) < 0.01


def test_rotated_module_keeps_its_scattering_angles(tmp_path):
    path = tmp_path / "jf_rot.h5"
    rotations = [0.0, 0.5, 0.0, -1.0]
    write_jungfrau(str(path), _jungfrau_frames(), OFFSETS, rotations_deg=rotations)
    frame = open_image(path)
    assert _two_theta_error(frame, rotations) < 0.75


def test_jungfrau_16m_name_gives_the_catalogue_downsample(tmp_path):
    path = tmp_path / "jf16.h5"
    write_jungfrau(str(path), _jungfrau_frames(), OFFSETS, description="JUNGFRAU 16M")
    assert open_image(path).geometry.detector == "JUNGFRAU 16M"
    assert open_image(path).geometry.downsample == 4


def test_tilted_module_is_unsupported(tmp_path):
    path = tmp_path / "tilted.h5"
    write_jungfrau(str(path), _jungfrau_frames(), OFFSETS)
    with h5py.File(path, "r+") as handle:
        handle["/entry/instrument/detector/ARRAY_D0M2/fast_pixel_direction"].attrs["vector"] = [-0.9, 0.0, 0.4359]
    with pytest.raises(ImageError, match="unsupported geometry: panel ARRAY_D0M2 is tilted 25.8°"):
        open_image(path)


def test_distance_changing_during_the_series(tmp_path):
    path = tmp_path / "moving.h5"
    write_jungfrau(str(path), _jungfrau_frames(), OFFSETS)
    with h5py.File(path, "r+") as handle:
        translation = handle["/entry/instrument/detector/transformations/translation"]
        attrs = dict(translation.attrs)
        del handle["/entry/instrument/detector/transformations/translation"]
        moved = handle.create_dataset("/entry/instrument/detector/transformations/translation", data=[120.0, 180.0])
        moved.attrs.update(attrs)
        moved.attrs["units"] = "mm"
    first, second = list(open_images(path, on_error="raise"))
    assert first.geometry.distance == pytest.approx(120.0) and second.geometry.distance == pytest.approx(180.0)


def test_depends_on_loop_and_unknown_units_are_clear_errors(tmp_path):
    path = tmp_path / "loop.h5"
    write_jungfrau(str(path), _jungfrau_frames(), OFFSETS)
    with h5py.File(path, "r+") as handle:
        handle["/entry/instrument/detector/transformations/translation"].attrs["depends_on"] = \
            "/entry/instrument/detector/ARRAY_D0M0/module_offset"
    with pytest.raises(ImageError, match="depends_on chain through .* loops"):
        open_image(path)
    with h5py.File(path, "r+") as handle:
        translation = handle["/entry/instrument/detector/transformations/translation"]
        translation.attrs["depends_on"] = "."
        translation.attrs["units"] = "furlong"
    with pytest.raises(ImageError, match="has units 'furlong', not a length unit"):
        open_image(path)


@pytest.mark.parametrize("compression", ["bitshuffle", "lz4"])
@pytest.mark.parametrize("dtype, shape", [(np.uint16, (2, 37, 53)), (np.uint32, (2, 64, 64)), (np.int32, (2, 5, 7))])
def test_chunk_check_accepts_valid_chunks_and_rejects_damaged_ones(tmp_path, compression, dtype, shape):
    import hdf5plugin

    from xrais.io.nexus import check_chunks

    options = hdf5plugin.Bitshuffle(cname="lz4") if compression == "bitshuffle" else hdf5plugin.LZ4()
    data = np.random.default_rng(5).poisson(30, shape).astype(dtype)
    path = tmp_path / "chunks.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=data, chunks=(1,) + shape[1:], **options)
    with h5py.File(path, "r") as handle:
        dataset = handle["data"]
        for frame in range(shape[0]):
            check_chunks(str(path), dataset, frame)
        np.testing.assert_array_equal(dataset[()], data)
        info = dataset.id.get_chunk_info(1)
    content = bytearray(path.read_bytes())
    start, size = info.byte_offset, info.size
    damaged = {
        "block size": content[:start + 12] + (10 ** 6).to_bytes(4, "big") + content[start + 16:],
        "total size": content[:start] + (2 ** 40).to_bytes(8, "big") + content[start + 8:],
        "payload": content[:start + 16] + bytes(np.random.default_rng(1).integers(0, 256, size - 16, np.uint8))
        + content[start + size:],
    }
    for problem, bytes_ in damaged.items():
        path.write_bytes(bytes(bytes_))
        with h5py.File(path, "r") as handle:
            check_chunks(str(path), handle["data"], 0)
            with pytest.raises(ImageError, match="damaged compressed chunk at \\(1, 0, 0\\)"):
                check_chunks(str(path), handle["data"], 1)


def test_a_master_whose_virtual_data_file_is_absent_is_refused_naming_it(shared_data):
    """A real EIGER2 NXmx master alone (reader_cases/README.md §4): its /entry/data/data is a virtual
    dataset over an external link to Therm_6_2_000001.h5, which is not there; HDF5 would read frames
    of zeros without complaint. One line names the missing file instead."""
    with pytest.raises(ImageError, match=r"virtual dataset whose data file Therm_6_2_000001\.h5 is missing"):
        open_image(shared_data / "reader_cases" / "Therm_6_2.nxs")


def test_a_file_of_one_2d_frame_reads_as_that_frame(tmp_path):
    """Issue 34, item 2: an image dataset of one 2-D frame (areaDetector writes single images so) is
    that frame, not a refusal."""
    path = tmp_path / "single.h5"
    frame = np.random.default_rng(1).poisson(3, (120, 160)).astype(np.int32)
    write_fields_only(str(path), frame, wavelength=0.9, distance_mm=180.0, beam_px=(70.0, 40.5))
    (read,) = list(open_images(path, on_error="raise"))
    np.testing.assert_array_equal(read.pixels, frame)
    assert read.index == 0 and read.geometry.shape == (120, 160)
    assert (read.geometry.distance, read.geometry.wavelength) == pytest.approx((180.0, 0.9))


def test_areadetector_nxsas_frame_without_units_is_refused_then_read_with_the_geometry_given(shared_data):
    """The real PILATUS 100K frame of an areaDetector NXsas file (reader_cases README, case 4): one
    2-D frame whose geometry fields carry no units. xrais does not guess them: one line naming the
    field and the parameters to give; given them, the frame reads with the monochromator's
    wavelength, the PILATUS 100K of the catalogue, a beam centre off the chip, and its one pixel past
    the PILATUS counters' trusted range masked."""
    from xrais.io import GeometryOverride

    path = shared_data / "reader_cases" / "AgBehenate_228.hdf5"
    (refused,) = list(open_images(path, on_error="yield"))
    assert isinstance(refused, FrameError)
    assert "x_pixel_size has no units" in refused.message and "pixel_size=" in refused.message
    given = GeometryOverride(distance=513.8, pixel_size=0.172, beam_centre=(86.36, -4.92))
    (frame,) = list(open_images(path, geometry=given, on_error="raise"))
    g = frame.geometry
    assert frame.pixels.shape == (195, 487) and g.detector == "PILATUS 100K"
    assert g.wavelength == pytest.approx(0.73362836) and g.beam_centre == pytest.approx((86.36, -4.92))
    assert frame.mask.sum() == 1 and frame.pixels[frame.mask][0] == 1_032_661


def test_nxmx_detector_on_a_two_theta_arm_is_read_swung(tmp_path):
    """Issue 34 item 1: an NXmx detector whose transformation chain starts with a 20° rotation about
    x (a 2θ arm) is read with that orientation: tilted 20° to the beam, the perpendicular from the
    sample meeting it at the module's offset, where 1/d = 2·sin(10°)/λ, and the beam meeting its plane
    120 mm · tan(20°) away, off the chip."""
    from iohelpers import _rotation

    master = str(tmp_path / "arm_master.h5")
    write_eiger(master, np.zeros((1, 300, 400), np.uint16), legacy_fields=False, beam_px=(200.5, 150.25),
                distance_mm=120.0)
    with h5py.File(master, "a") as handle:
        transformations = handle["/entry/instrument/detector/transformations"]
        _rotation(transformations, "two_theta", 20.0, (1, 0, 0), ".")
        transformations["translation"].attrs["depends_on"] = "/entry/instrument/detector/transformations/two_theta"
    geometry = next(iter(open_images([master]))).geometry
    assert geometry.tilt_deg == pytest.approx(20.0) and geometry.distance == pytest.approx(120.0)
    assert geometry.perpendicular_foot == pytest.approx((200.5, 150.25))
    assert geometry.inverse_d_at_pixel(200.5, 150.25) == pytest.approx(2 * math.sin(math.radians(10)) / 0.97625)
    assert abs(geometry.beam_centre[1] - 150.25) * 0.075 == pytest.approx(120.0 * math.tan(math.radians(20)))
