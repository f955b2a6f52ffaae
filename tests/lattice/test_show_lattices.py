"""xrais.show_lattices: the lattice picture of a real frame, and one clear line for a bad input."""
import numpy as np

from xrais.command_line.show_lattices import program


def test_lattice_picture_of_a_real_frame(shared_data, tmp_path, capsys, monkeypatch):
    """The DLS I03 rotation frame (one thaumatin crystal): one picture, its line names the
    thaumatin cell (a = b ≈ 57.8, c ≈ 150 Å) indexing every spot; a missing file beside it gets one
    line and exit code 1, the good frame's picture is still written."""
    monkeypatch.chdir(tmp_path)
    image = shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz"
    code = program([str(image), str(tmp_path / "missing.cbf"), "output.directory=pictures"])
    out, err = capsys.readouterr()
    assert code == 1
    picture = tmp_path / "pictures" / "DLS_I03_smargon_0001_lattices.png"
    assert picture.is_file() and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    pixels = matplotlib.image.imread(picture)
    assert pixels.shape[0] > 600 and np.ptp(pixels[..., :3]) > 0.5  # a drawn figure, not a blank
    line = next(line for line in out.splitlines() if "DLS_I03" in line and "spots;" in line)
    assert "lattice 1: 100%" in line and "lattice 2" not in line
    cell = [float(v) for v in line.split("lattice 1: 100% (")[1].split(" Å")[0].split(" × ")]
    assert np.allclose(sorted(cell), (57.8, 57.8, 150.2), rtol=0.02)
    assert "missing.cbf" in err and err.count("\n") == 1 and "Traceback" not in out + err
