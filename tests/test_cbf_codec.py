"""miniCBF byte-offset codec and writer: exact round trips, and files other readers accept."""
import fabio
import numpy as np
import pytest

import xrais
from xrais.io import Geometry, ImageError
from xrais.io.cbf import byte_offset_decode, byte_offset_encode, write_cbf


@pytest.mark.parametrize("values", [
    [0, 1, -1, 127, -127, 128, -128, 32767, -32767, 32768, -32768, 2**31 - 1, -2**31 + 1, 0],
    [5] * 10,
    [0, 2**40, -2**40, 3],
])
def test_byte_offset_round_trip_all_delta_widths(values):
    values = np.array(values, dtype=np.int64)
    encoded = byte_offset_encode(values)
    decoded, n = byte_offset_decode(encoded, values.size, np.int64)
    assert n == values.size
    np.testing.assert_array_equal(decoded, values)


def test_truncated_data_reports_how_much_was_decoded():
    values = np.arange(0, 100000, 7, dtype=np.int64)
    encoded = byte_offset_encode(values)
    _, n = byte_offset_decode(encoded[: len(encoded) // 2], values.size, np.int64)
    assert 0 < n < values.size


def test_written_cbf_reads_back_in_xrais_and_fabio(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.poisson(20, (195, 487)).astype(np.int32)
    pixels[5, 7] = 1_000_000
    pixels[0, :] = -1
    geometry = Geometry(distance=123.4, wavelength=0.9795, pixel_size=0.172, beam_centre=(240.5, 100.25),
                        shape=pixels.shape, detector="PILATUS 6M")
    path = tmp_path / "img.cbf"
    write_cbf(str(path), pixels, geometry, count_cutoff=500000)
    frame = xrais.open_image(path)
    np.testing.assert_array_equal(frame.pixels, pixels)
    assert frame.geometry.distance == pytest.approx(123.4)
    assert frame.geometry.wavelength == pytest.approx(0.9795)
    assert frame.geometry.beam_centre == pytest.approx((240.5, 100.25))
    assert frame.geometry.pixel_size == pytest.approx(0.172)
    assert frame.mask[0].all() and frame.mask[5, 7] and frame.mask.sum() == 487 + 1
    np.testing.assert_array_equal(fabio.open(str(path)).data, pixels)


def test_truncated_cbf_file_is_one_clear_error(tmp_path):
    pixels = np.random.default_rng(1).poisson(20, (100, 120)).astype(np.int32)
    geometry = Geometry(distance=100, wavelength=1, pixel_size=0.172, beam_centre=(60, 50), shape=pixels.shape)
    path = tmp_path / "img.cbf"
    write_cbf(str(path), pixels, geometry)
    content = path.read_bytes()
    cut = tmp_path / "cut.cbf"
    cut.write_bytes(content[: content.index(b"\x0c\x1a\x04\xd5") + 500])
    with pytest.raises(ImageError, match=r"cut\.cbf: CBF data truncated"):
        xrais.open_image(cut)


def test_a_rotation_frame_records_its_wedge_in_the_header(tmp_path):
    """write_cbf's Start_angle / Angle_increment (the simulator's rotation frames): read back as the
    frame's metadata, as a PILATUS header carries them."""
    from xrais.io import Geometry, open_image
    from xrais.io.cbf import write_cbf

    geometry = Geometry(200.0, 1.0, 0.172, (100.5, 100.5), (200, 200), detector="PILATUS 6M")
    write_cbf(str(tmp_path / "rotation.cbf"), np.zeros((200, 200), np.int32), geometry, start_angle=-0.25,
              angle_increment=0.5)
    metadata = open_image(tmp_path / "rotation.cbf").metadata
    assert metadata["start_angle"] == -0.25 and metadata["angle_increment"] == 0.5
