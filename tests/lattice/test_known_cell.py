"""Indexing with a known cell (DIALS ``known_symmetry``): the primitive cell of a centred one, the
first lattice found as that cell oriented where a free search cannot beat chance, and the programs'
``known_symmetry.*`` parameters."""
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from xrais.lattice import IndexingSettings, index_lattices
from xrais.lattice.cell import CENTRING_BASES, cell_volume, default_orientation, known_cell_vectors, lattice_centring
from xrais.lattice.indexing import lattice_misorientation_deg, reduced_basis
from xrais.sim import random_rotation

from latticehelpers import ewald_cap_spots

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chance_lattices.py"
#: Lattice points per conventional cell of each centring (International Tables).
POINTS_PER_CELL = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}
#: The centring translations (fractions of the conventional a, b, c) besides the origin.
TRANSLATIONS = {"P": [], "A": [(0, .5, .5)], "B": [(.5, 0, .5)], "C": [(.5, .5, 0)], "I": [(.5, .5, .5)],
                "F": [(0, .5, .5), (.5, 0, .5), (.5, .5, 0)], "R": [(2 / 3, 1 / 3, 1 / 3), (1 / 3, 2 / 3, 2 / 3)]}


@pytest.mark.parametrize("letter", sorted(CENTRING_BASES))
def test_a_centred_cells_primitive_vectors_span_its_lattice(letter):
    """The primitive cell holds one lattice point: its volume is the conventional cell's over the
    points per cell; each primitive vector is a lattice translation (whole, or whole plus a
    centring vector, in the conventional axes), and the conventional edges are whole combinations
    of the primitive vectors (the two span one lattice)."""
    cell = (80.0, 80.0, 100.0, 90.0, 90.0, 120.0) if letter == "R" else (60.0, 70.0, 80.0, 90.0, 90.0, 90.0)
    conventional = default_orientation(cell)
    primitive = known_cell_vectors(cell, letter + "2")
    assert abs(np.linalg.det(primitive)) == pytest.approx(cell_volume(cell) / POINTS_PER_CELL[letter], rel=1e-9)
    fractions = primitive @ np.linalg.inv(conventional)  # rows: primitive vectors in conventional axes
    for row in fractions:
        offsets = [np.zeros(3)] + [np.array(t) for t in TRANSLATIONS[letter]]
        assert any(np.allclose(row - t, np.rint(row - t), atol=1e-9) for t in offsets), (letter, row)
    in_primitive = conventional @ np.linalg.inv(primitive)
    assert np.allclose(in_primitive, np.rint(in_primitive), atol=1e-9)


def test_space_group_symbols_give_their_lattice_letter_and_others_are_refused():
    assert [lattice_centring(s) for s in ("P 61 2 2", "P41212", "C2", "c 1 2 1", "I222", "F23", "H3", "R3:H", None)] \
        == ["P", "P", "C", "C", "I", "F", "R", "R", "P"]
    for bad in ("19", "", "X2", "Hexagonal", "Pxyz"):
        with pytest.raises(ValueError, match="lattice letter"):
            lattice_centring(bad)
    # R: hexagonal axes take the centring, rhombohedral ones are primitive, any other cell is refused
    for not_r in ((80.0, 80.0, 100.0, 90.0, 90.0, 90.0), (50.1, 50.0, 49.9, 80.0, 80.0, 80.0)):
        with pytest.raises(ValueError, match="hexagonal axes"):
            known_cell_vectors(not_r, "R3")
    assert known_cell_vectors("60, 70 80,90,90,90") == pytest.approx(known_cell_vectors((60, 70, 80, 90, 90, 90)))
    # a hexagonal or tetragonal group needs its family's cell; other groups take any
    for cell, group in (((93.0, 93.0, 130.5, 90.0, 90.0, 90.0), "P6122"), ((58.5, 60.0, 151.0, 90.0, 90.0, 90.0), "P41212"),
                        ((80.0, 80.0, 100.0, 90.0, 90.0, 90.0), "P 31 2 1")):
        with pytest.raises(ValueError, match="does not fit space group"):
            known_cell_vectors(cell, group)
    for cell, group in (((93.0, 93.0, 130.5, 90.0, 90.0, 120.0), "P 61 2 2"), ((58.5, 58.5, 151.0, 90.0, 90.0, 90.0), "P41212"),
                        ((80.0, 80.0, 80.0, 90.0, 90.0, 90.0), "P432"), ((60.0, 70.0, 80.0, 90.0, 101.0, 90.0), "C2"),
                        ((40.0, 50.0, 60.0, 80.0, 85.0, 95.0), "P1")):
        known_cell_vectors(cell, group)
    # an R cell given in rhombohedral axes is primitive already: the same volume
    rhombohedral = (50.0, 50.0, 50.0, 80.0, 80.0, 80.0)
    assert abs(np.linalg.det(known_cell_vectors(rhombohedral, "R3"))) == pytest.approx(cell_volume(rhombohedral))
    for bad_cell in ((60, 70, 80, 90, 90), (60, -70, 80, 90, 90, 90), (60, 70, 80, 90, 90, 180),
                     (60, 70, 80, 120, 120, 120), (60, 70, 80, 130, 130, 130)):  # five numbers, a negative edge,
        # a flat angle, angles that leave no volume or close no cell
        with pytest.raises(ValueError, match="unit cell"):
            known_cell_vectors(bad_cell)


def _random_cap(n, rng):
    spec = importlib.util.spec_from_file_location("chance_lattices", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.random_cap(n, rng)


def test_a_known_centred_cell_indexes_a_crystal_a_free_search_cannot_tell_from_chance():
    """16 reflections of an I-centred crystal among 14 stray spots: the best free cell of 30 points
    must index more than ~70 % of them to beat chance, which 16 cannot, and the strays hide the
    lattice's periodicity from a basis search; the known conventional cell and its space group give
    the crystal (the pair search): its primitive cell, turned as the crystal (within 0.3°),
    indexing its 16 reflections. A wrong known cell (edges 8 % longer) indexes nothing."""
    cell, space_group = (62.0, 71.0, 83.0, 90.0, 90.0, 90.0), "I222"
    primitive = known_cell_vectors(cell, space_group)
    rng = np.random.default_rng(11)
    found_free, found_known = 0, 0
    for _ in range(4):
        rotation = random_rotation(rng)
        spots = ewald_cap_spots(primitive, rotation, d_min=2.0, on_sphere=True)
        spots = spots[rng.permutation(len(spots))[:16]]
        vectors = np.concatenate([spots, _random_cap(14, rng)])
        found_free += index_lattices(vectors).n_lattices
        known = index_lattices(vectors, settings=IndexingSettings(known_cell=cell, known_space_group=space_group))
        if known.n_lattices:
            lattice = known.lattices[0]
            angle = lattice_misorientation_deg(reduced_basis(primitive @ rotation.T), reduced_basis(lattice.real_vectors))
            found_known += bool(angle < 0.3 and lattice.indexed[:16].all())
        wrong = index_lattices(vectors, settings=IndexingSettings(known_cell=(67.0, 76.7, 89.6, 90.0, 90.0, 90.0),
                                                                  known_space_group=space_group))
        assert wrong.n_lattices == 0
    assert found_free == 0
    assert found_known >= 3


def test_the_pair_search_loses_no_orientation_by_the_symmetry_it_skips(monkeypatch):
    """Trying the first node of a pair once per symmetry set finds as many spots as trying every
    node (R and R·g index alike), 20 reflections among 10 strays: on a tetragonal cell (where the
    crystal is found), and on a cell only nearly tetragonal (edges 3 % apart), whose rotations must
    then be an orthorhombic cell's four, not eight."""
    from xrais.lattice import indexing

    rng = np.random.default_rng(4)
    for cell, order in (((58.5, 58.5, 151.0, 90.0, 90.0, 90.0), 8), ((30.0, 31.0, 250.0, 90.0, 90.0, 90.0), 4)):
        vectors = known_cell_vectors(cell)
        assert len(indexing.lattice_rotations(vectors)) == order
        for _ in range(3):
            spots = ewald_cap_spots(vectors, random_rotation(rng), d_min=2.5, on_sphere=True)
            spots = np.concatenate([spots[rng.permutation(len(spots))[:20]], _random_cap(10, rng)])
            turned = vectors @ random_rotation(rng).T
            reduced = indexing.orient_known_cell_from_pairs(spots, turned)
            with monkeypatch.context() as patch:
                patch.setattr(indexing, "_first_of_symmetry_copies", lambda nodes, cell: np.ones(len(nodes), bool))
                every = indexing.orient_known_cell_from_pairs(spots, turned)
            assert every is not None and reduced is not None and reduced.n_indexed == every.n_indexed
            if order == 8:  # and on the tetragonal cell the crystal is found
                assert reduced.indexed[:20].sum() >= 18


def test_the_pair_search_respects_the_lattice_symmetry_it_skips():
    """The pair search tries the first node of a pair in one of each set of nodes the lattice's
    rotations map onto each other: the rotations of a lattice are its holohedry's (hexagonal 12,
    tetragonal 8, orthorhombic 4, monoclinic 2, cubic 24, rhombohedral 6) and keep its metric, and
    the nodes kept, with their images, are every node of a ball."""
    from xrais.lattice.indexing import _first_of_symmetry_copies, lattice_rotations

    for cell, group, order in (((92.9, 92.9, 130.4, 90, 90, 120), "P6122", 12), ((58.5, 58.5, 151.4, 90, 90, 90), "P41212", 8),
                               ((60, 70, 80, 90, 90, 90), "P212121", 4), ((60, 70, 80, 90, 100, 90), "C2", 2),
                               ((80, 80, 80, 90, 90, 90), "F23", 24), ((80, 80, 100, 90, 90, 120), "R3", 6)):
        vectors = known_cell_vectors(cell, group)
        rotations = lattice_rotations(vectors)
        assert len(rotations) == order and np.allclose(rotations[0], np.eye(3))
        assert np.allclose(rotations @ np.transpose(rotations, (0, 2, 1)), np.eye(3), atol=1e-6)
        miller = np.array(list(itertools.product(range(-8, 9), repeat=3)))
        nodes = miller[np.abs(miller).sum(axis=1) > 0] @ np.linalg.inv(vectors).T
        nodes = nodes[np.linalg.norm(nodes, axis=1) <= 0.08]  # a ball: the rotations map it onto itself
        first = _first_of_symmetry_copies(nodes, vectors)
        # one node per set: about 1/order of them (more: nodes on a rotation axis have fewer copies)
        assert len(nodes) / order <= first.sum() <= 1.6 * len(nodes) / order
        covered = np.rint(np.concatenate([nodes[first] @ rotation.T for rotation in rotations]) @ vectors.T).astype(int)
        own = {tuple(h) for h in np.rint(nodes @ vectors.T).astype(int)}
        assert own <= {tuple(h) for h in covered}


def test_the_multilattice_program_takes_a_known_cell_and_refuses_one_that_is_none(tmp_path, capsys):
    """known_symmetry.* as dials.index's: a cell that is none, or a space group alone, is one error line
    naming the parameter; a good one is used for indexing (the cell indexed is the known one)."""
    import json

    from xrais.command_line.predict import multilattice_program
    from xrais.examples import paths

    image = next(path for path in paths() if path.endswith("example_resolution_0.cbf.gz"))  # one crystal
    for words, message in ((["known_symmetry.unit_cell=60,70,80,90,90,200"], "angles"),
                           (["known_symmetry.unit_cell=60,70,80"], "expected 6 values"),
                           (["known_symmetry.space_group=P212121"], "without its unit cell"),
                           (["known_symmetry.unit_cell=60,70,80,90,90,90", "known_symmetry.space_group=19"],
                            "lattice letter"),
                           (["known_symmetry.unit_cell=80,80,100,90,90,90", "known_symmetry.space_group=R3"],
                            "hexagonal axes")):
        assert multilattice_program([image, "output.log=None", "output.json=None", "output.plot=None"] + words) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    free = tmp_path / "free.json"
    assert multilattice_program([image, "predictors=indexing", f"output.json={free}", "output.plot=None",
                                      "output.log=None"]) == 0
    (row,) = json.loads(free.read_text())["images"]
    assert row["n_lattices_indexed"] >= 1
    known_cell = ",".join(f"{v:.2f}" for v in row["cell_indexed"])
    known = tmp_path / "known.json"
    assert multilattice_program([image, "predictors=indexing", f"known_symmetry.unit_cell={known_cell}",
                                      f"output.json={known}", "output.plot=None", "output.log=None"]) == 0
    (row_known,) = json.loads(known.read_text())["images"]
    assert row_known["n_lattices_indexed"] >= 1
    assert row_known["fraction_indexed"] >= row["fraction_indexed"] - 0.05
    lengths = sorted(row_known["cell_indexed"][:3])
    assert np.allclose(lengths, sorted(row["cell_indexed"][:3]), rtol=0.02)
    # the cell reaches the indexing: 8 % longer edges index nothing, and the reason names the known cell
    wrong_cell = ",".join(f"{v * (1.08 if i < 3 else 1.0):.2f}" for i, v in enumerate(row["cell_indexed"]))
    wrong = tmp_path / "wrong.json"
    assert multilattice_program([image, "predictors=multilattice,indexing", f"known_symmetry.unit_cell={wrong_cell}",
                                 f"output.json={wrong}", "output.plot=None", "output.log=None"]) == 0
    (row_wrong,) = json.loads(wrong.read_text())["images"]
    assert row_wrong["n_lattices_indexed"] == 0 and row_wrong["p_multilattice"] is None
    assert "known cell" in row_wrong["multilattice_undetermined"]


def test_show_lattices_draws_the_known_cells_lattice(tmp_path, capsys):
    """xrais.show_lattices with known_symmetry.*: the picture is written and its line gives the lattice
    of the known cell's edges; with a wrong cell, the reason names the known cell."""
    from xrais.command_line.show_lattices import program
    from xrais.examples import paths

    image = next(path for path in paths() if path.endswith("example_resolution_0.cbf.gz"))
    assert program([image, f"output.directory={tmp_path}", "output.log=None"]) == 0
    free_line = capsys.readouterr().out
    assert "lattice 1:" in free_line
    cell = free_line.split("lattice 1:")[1].split("(")[1].split(" Å")[0]  # "a × b × c"
    edges = [float(v) for v in cell.split(" × ")]
    # the reduced cell's angles are not printed: a cell of these edges with right angles may not be
    # the crystal's; its edges 8 % longer certainly are not
    wrong = ",".join(f"{1.08 * v:.2f}" for v in edges) + ",90,90,90"
    assert program([image, f"output.directory={tmp_path}", "output.log=None", f"known_symmetry.unit_cell={wrong}"]) == 0
    assert "no orientation of the known cell" in capsys.readouterr().out
    assert list(tmp_path.glob("*_lattices.png"))


def test_the_pair_search_fits_random_points_no_better_than_its_chance_table():
    """The pair search's best orientation of a known cell in random points (no lattice): of 16 draws
    of 20 and 40 points, at most one indexes more than its chance share
    (:data:`CHANCE_INDEXED_KNOWN_CELL_PAIRS`, a 99th percentile) and a first lattice's threshold,
    which no draw passes; and it does search them (a search that found nothing would pass the
    rest): its mean count is above half the basis-search route's 99th percentile."""
    from xrais.lattice.indexing import (CHANCE_INDEXED_KNOWN_CELL, CHANCE_INDEXED_KNOWN_CELL_PAIRS, chance_indexed,
                                        orient_known_cell_from_pairs)

    rng = np.random.default_rng(5)
    cell = known_cell_vectors((58.5, 58.5, 151.0, 90.0, 90.0, 90.0), "P41212")
    settings = IndexingSettings()
    for n in (20, 40):
        counts = []
        for _ in range(16):
            found = orient_known_cell_from_pairs(_random_cap(n, rng), cell @ random_rotation(rng).T)
            counts.append(0 if found is None else found.n_indexed)
        least = 1.1 * chance_indexed(n, CHANCE_INDEXED_KNOWN_CELL_PAIRS)
        assert sum(count > least for count in counts) <= 1
        first_lattice = max(least, settings.min_lattice_spots, settings.min_fraction * n)
        assert max(counts) <= first_lattice
        assert np.mean(counts) > chance_indexed(n, CHANCE_INDEXED_KNOWN_CELL) / 2
