"""Structure factors from cctbx (run in child processes: pytest has loaded numba first) and the
disk pool."""
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from xrais.sim import (PAPER_SPACE_GROUPS, StructureFactors, StructurePool, cache_folder, model_structure_factors,
                       random_structure_factors, structure_factors_from_model)
from xrais.sim.crystal import reciprocal_vectors, default_orientation

# (never import cctbx here: after numba it crashes the interpreter, see xrais.sim.structures)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("cctbx") is None,
                                reason="structure factors need the optional cctbx-base (extra 'sim')")


def resolution_of_nonzero(structure):
    """1/|G| (Å) of every non-zero entry of the table."""
    index = np.argwhere(structure.intensities > 0) + np.asarray(structure.origin)
    g = index @ reciprocal_vectors(default_orientation(structure.cell))
    return 1.0 / np.linalg.norm(g, axis=1)


@pytest.fixture(scope="module")
def tetragonal():
    return random_structure_factors(5, "P 43 21 2", (40.0, 40.0, 30.0, 90.0, 90.0, 90.0), d_min=3.0)


def test_random_structure_has_its_space_group_symmetry(tetragonal):
    value = tetragonal.intensity
    h, k, l = np.meshgrid(np.arange(-10, 11), np.arange(-10, 11), np.arange(-8, 9), indexing="ij")
    reference = value(h, k, l)
    assert np.count_nonzero(reference) > 1000
    np.testing.assert_array_equal(value(-h, -k, -l), reference)  # Friedel
    np.testing.assert_array_equal(value(k, h, -l), reference)  # 2-fold along [110] of 422
    np.testing.assert_array_equal(value(-k, h, l), reference)  # 4-fold along c
    l_axis = np.arange(1, 10)
    assert np.all(value(0, 0, l_axis[l_axis % 4 != 0]) == 0)  # 4₃ screw: 00l with l ≠ 4n absent
    assert np.all(value(np.arange(1, 12, 2), 0, 0) == 0)  # 2₁ screw: h00 with h odd absent
    assert value(0, 0, 0) == 0
    assert tetragonal.space_group == "P 43 21 2" and tetragonal.d_min == pytest.approx(3.0, abs=0.01)
    assert resolution_of_nonzero(tetragonal).min() >= 3.0 - 1e-6


def test_random_space_group_and_cell_fit_the_table_cap():
    structure = random_structure_factors(np.random.default_rng(3), volume_range=(2e5, 2e6), d_min=2.0,
                                         max_table_bytes=3_000_000)
    assert structure.space_group in PAPER_SPACE_GROUPS
    assert structure.nbytes <= 3_000_000
    assert np.count_nonzero(structure.intensities) > 1000


def test_seeds_make_structures_reproducible():
    first = random_structure_factors(np.random.default_rng(7), "P 1", (20.0, 22.0, 25.0, 80.0, 95.0, 105.0), d_min=4.0)
    again = random_structure_factors(np.random.default_rng(7), "P 1", (20.0, 22.0, 25.0, 80.0, 95.0, 105.0), d_min=4.0)
    np.testing.assert_array_equal(first.intensities, again.intensities)


def test_dense_expansion_equals_cctbx_expand_to_p1():
    """In a process that loads cctbx first: the table equals cctbx's expand_to_p1 + Friedel mates."""
    script = textwrap.dedent("""
        import cctbx.xray, iotbx.pdb
        import numpy as np
        from cctbx import crystal, sgtbx, xray
        from cctbx.array_family import flex
        from xrais.sim import structures
        assert structures.cctbx_loads_here()
        for group, cell in [("P 43 21 2", (40, 40, 30, 90, 90, 90)), ("C 1 2 1", (50, 30, 40, 90, 105, 90)),
                            ("R 3 2 :H", (40, 40, 60, 90, 90, 120)), ("I 21 21 21", (30, 40, 45, 90, 90, 90)),
                            ("P 61 2 2", (35, 35, 50, 90, 90, 120)), ("F 4 3 2", (60, 60, 60, 90, 90, 90))]:
            table = structures.random_structure_factors(11, group, cell, d_min=3.0)
            rng = np.random.default_rng(11)
            info = sgtbx.space_group_info(group)
            symmetry = crystal.symmetry(unit_cell=cell, space_group_info=info)
            atoms = max(1, int(round(0.5 * symmetry.unit_cell().volume() / 18.0 / info.group().order_z())))
            sites = rng.random((atoms, 3))
            elements = rng.choice(structures.PROTEIN_ELEMENTS, size=atoms, p=structures.PROTEIN_FRACTIONS)
            scatterers = flex.xray_scatterer()
            for i, (site, element) in enumerate(zip(sites, elements)):
                scatterers.append(xray.scatterer(label=f"{element}{i}", site=tuple(site), u=0.0,
                                                 scattering_type=str(element)))
            p1 = (xray.structure(crystal_symmetry=symmetry, scatterers=scatterers)
                  .structure_factors(d_min=3.0, algorithm="fft").f_calc().amplitudes()
                  .expand_to_p1().generate_bijvoet_mates())
            hkl = np.asarray(p1.indices())
            amplitudes = np.asarray(p1.data())
            assert np.count_nonzero(table.intensities) == len(hkl), group
            np.testing.assert_allclose(table.intensity(hkl[:, 0], hkl[:, 1], hkl[:, 2]), amplitudes ** 2,
                                       rtol=1e-5, atol=1e-6 * amplitudes.max() ** 2)
        print("ok")
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == "ok"


MODEL_ATOMS = [("CNOS"[i % 4] if i % 10 else "S", xyz)
               for i, xyz in enumerate(np.random.default_rng(1).uniform(0, 30, size=(30, 3)), start=1)]


def write_pdb(path):
    """A 30-atom P 21 21 21 model in PDB format."""
    lines = ["CRYST1   30.000   35.000   40.000  90.00  90.00  90.00 P 21 21 21    4"]
    for i, (element, (x, y, z)) in enumerate(MODEL_ATOMS, start=1):
        lines.append(f"ATOM  {i:5d}  {element:<3s} ALA A{i:4d}    {x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{35.0:6.2f}"
                     f"          {element:>2s}")
    path.write_text("\n".join(lines) + "\nEND\n")


def write_mmcif(path):
    """The same model in mmCIF format."""
    lines = ["data_tiny", "_cell.length_a 30.0", "_cell.length_b 35.0", "_cell.length_c 40.0",
             "_cell.angle_alpha 90.0", "_cell.angle_beta 90.0", "_cell.angle_gamma 90.0",
             "_symmetry.space_group_name_H-M 'P 21 21 21'", "loop_"]
    lines += [f"_atom_site.{name}" for name in ("group_PDB", "id", "label_atom_id", "label_alt_id", "label_comp_id",
                                                 "auth_asym_id", "auth_seq_id", "pdbx_PDB_ins_code", "Cartn_x",
                                                 "Cartn_y", "Cartn_z", "occupancy", "B_iso_or_equiv", "type_symbol",
                                                 "label_asym_id", "label_entity_id", "label_seq_id", "auth_atom_id",
                                                 "pdbx_PDB_model_num")]
    for i, (element, (x, y, z)) in enumerate(MODEL_ATOMS, start=1):
        lines.append(f"ATOM {i} {element} . ALA A {i} ? {x:.3f} {y:.3f} {z:.3f} 1.0 35.0 {element} A 1 {i} {element} 1")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def model_from_pdb(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.pdb"
    write_pdb(path)
    return path, structure_factors_from_model(path, d_min=2.5)


def test_model_structure_factors(model_from_pdb):
    _, structure = model_from_pdb
    assert structure.cell == pytest.approx((30.0, 35.0, 40.0, 90.0, 90.0, 90.0))
    assert structure.space_group == "P 21 21 21"
    h, k, l = np.meshgrid(np.arange(-8, 9), np.arange(-8, 9), np.arange(-8, 9), indexing="ij")
    reference = structure.intensity(h, k, l)
    assert np.count_nonzero(reference) > 1000
    np.testing.assert_array_equal(structure.intensity(-h, k, l), reference)  # mmm Laue group
    assert np.all(structure.intensity(np.arange(1, 12, 2), 0, 0) == 0)


def test_mmcif_model_gives_the_same_table(model_from_pdb, tmp_path):
    _, from_pdb = model_from_pdb
    path = tmp_path / "tiny.cif"
    write_mmcif(path)
    from_cif = structure_factors_from_model(path, d_min=2.5)
    np.testing.assert_allclose(from_cif.intensities, from_pdb.intensities, rtol=1e-5, atol=1e-3)


def test_model_cache_reads_back_without_rebuilding(model_from_pdb, tmp_path):
    path, structure = model_from_pdb
    cached = model_structure_factors(path, d_min=2.5, folder=tmp_path / "cache")
    np.testing.assert_array_equal(cached.intensities, structure.intensities)
    files = sorted((tmp_path / "cache").iterdir())
    assert [f.suffix for f in files] == [".json", ".npy"]
    stamp = files[1].stat().st_mtime_ns
    model_structure_factors(path, d_min=2.5, folder=tmp_path / "cache")
    assert files[1].stat().st_mtime_ns == stamp


def test_structure_pool_builds_once_and_memory_maps(tmp_path, monkeypatch):
    pool = StructurePool(size=3, seed=0, d_min=4.0, folder=tmp_path, volume_range=(5e4, 1e5))
    first = pool.get(1)
    assert StructureFactors.exists(pool.stem(1)) and not StructureFactors.exists(pool.stem(0))
    stamp = pool.stem(1).with_suffix(".npy").stat().st_mtime_ns
    again = StructurePool(size=3, seed=0, d_min=4.0, folder=tmp_path, volume_range=(5e4, 1e5)).get(1)
    assert not again.intensities.flags.writeable  # the read-only memory map of the cached file
    np.testing.assert_array_equal(again.intensities, first.intensities)
    assert pool.stem(1).with_suffix(".npy").stat().st_mtime_ns == stamp
    assert StructurePool(size=3, seed=1, d_min=4.0, folder=tmp_path).stem(1) != pool.stem(1)
    assert pool.draw(np.random.default_rng(0)).intensities.ndim == 3
    with pytest.raises(IndexError):
        pool.get(3)

    monkeypatch.setenv("XRAIS_CACHE", str(tmp_path / "elsewhere"))
    assert cache_folder() == tmp_path / "elsewhere" / "structures"
    assert StructurePool().folder == tmp_path / "elsewhere" / "structures"
    monkeypatch.delenv("XRAIS_CACHE")
    assert cache_folder() == Path.home() / ".cache" / "xrais" / "structures"


def test_building_the_pool_shows_its_progress(tmp_path, monkeypatch, capsys):
    """Issue 18, item 9: xrais.simulate builds the missing structures of its pool with a progress
    bar on stderr (the callback is called once per structure), and says nothing once they are cached."""
    from xrais.command_line.simulate import build_pool

    pool = StructurePool(size=2, seed=0, d_min=4.0, folder=tmp_path, volume_range=(5e4, 1e5))
    assert pool.missing() == [0, 1]
    monkeypatch.setenv("XRAIS_PROGRESS", "1")
    build_pool(pool)
    bar = capsys.readouterr().err
    assert "structure pool [" in bar and " 2/2 " in bar and bar.endswith("\n")
    assert pool.missing() == []
    build_pool(pool)
    assert capsys.readouterr().err == ""
    ready = []
    pool.build([1, 0], progress=ready.append)
    assert ready == [1, 1]
