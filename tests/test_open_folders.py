"""Folder expansion: image files by suffix, NeXus data files reached only through their master."""
from xrais.io import expand_inputs


def test_folder_lists_images_and_skips_nexus_data_files(tmp_path):
    for name in ("a_0001.cbf", "a_0002.cbf.gz", "x_master.h5", "x_data_000001.h5", "ins_1.nxs", "ins_1_000001.h5",
                 "scan_000001.h5", "notes.txt", "b.img"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    found = [p.split("/")[-1] for p in expand_inputs(tmp_path)]
    assert found == ["a_0001.cbf", "a_0002.cbf.gz", "b.img", "ins_1.nxs", "scan_000001.h5", "x_master.h5"]


def test_globs_and_missing_names(tmp_path):
    for name in ("a_0001.cbf", "a_0002.cbf", "b_0001.cbf"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.split("/")[-1] for p in expand_inputs(str(tmp_path / "a_*.cbf"))] == ["a_0001.cbf", "a_0002.cbf"]
    missing = str(tmp_path / "zz_*.cbf")
    assert expand_inputs([missing]) == [missing]  # kept, so that reading it reports "no such file"
