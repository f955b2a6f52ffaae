"""Multi-lattice evidence of indexed stills (xrais.lattice.evidence) and the lattice-evidence
network (xrais.models.evidence): physics on reflections of known lattices."""
import hashlib
import json

import numpy as np
import pytest

from xrais.lattice import FEATURE_NAMES, index_lattices, lattice_evidence
from xrais.lattice.evidence import shortest_node_spacing
from xrais.sim import axis_angle_rotation, random_rotation

from latticehelpers import ewald_cap_spots

CELL = np.diag([62.0, 71.0, 80.0])


def _spots(rotations, d_min=1.8, on_sphere=False):
    return np.concatenate([ewald_cap_spots(CELL, rotation, d_min, excitation=0.001, on_sphere=on_sphere)
                           for rotation in rotations])


@pytest.fixture(scope="module")
def orientations():
    rng = np.random.default_rng(11)
    first = random_rotation(rng)
    return first, {angle: axis_angle_rotation(rng.normal(size=3), np.radians(angle)) @ first for angle in (1.0, 20.0)}


def test_shortest_node_spacing_is_one_over_the_longest_edge_of_an_orthogonal_cell():
    assert shortest_node_spacing(CELL) == pytest.approx(1.0 / 80.0)
    # and does not depend on the basis chosen for the lattice
    assert shortest_node_spacing(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]) @ CELL) == pytest.approx(1.0 / 80.0)


def test_one_lattice_leaves_no_evidence_of_another(orientations):
    """Reflections of one crystal: all indexed by it, each Miller index once, no two spots closer
    than its nodes, the error of outer spots like that of inner ones."""
    first, _ = orientations
    evidence = lattice_evidence(index_lattices(_spots([first])))
    assert set(evidence) == set(FEATURE_NAMES)
    assert evidence["fraction_first"] > 0.98 and evidence["fraction_other"] == 0.0
    assert evidence["n_lattices"] == 1 and evidence["shared_hkl"] == 0.0 and evidence["close_pairs"] == 0.0
    assert evidence["log_misorientation"] == 0.0 and evidence["rms_first"] < 0.05


def test_a_crystal_split_by_one_degree_shows_in_the_evidence(orientations):
    """Two lattices 1° apart, which index as one within the tolerance: the second's spots sit
    beside the first's, closer than any two nodes of one lattice, the same reflections lit twice,
    and the lattice's fit is looser than that of one crystal alone."""
    first, turned = orientations
    single = lattice_evidence(index_lattices(_spots([first])))
    split = lattice_evidence(index_lattices(_spots([first, turned[1.0]])))
    assert split["close_pairs"] > 0.1 and split["shared_hkl"] > 0.1
    assert split["rms_first"] > single["rms_first"] + 0.03


def test_excitation_errors_are_not_read_as_a_split(orientations):
    """Spots recorded on the Ewald sphere (each off its node by the excitation error, along the
    sphere's normal): the tangential offsets stay near zero, whatever the radial ones; a split of
    1° moves them tangentially by a good part of a degree."""
    first, turned = orientations
    single = lattice_evidence(index_lattices(_spots([first], on_sphere=True)))
    split = lattice_evidence(index_lattices(_spots([first, turned[1.0]], on_sphere=True)))
    assert single["rms_first"] > 0.005  # the spots are off their nodes…
    assert single["tangential_p90_deg"] < 0.01  # …but not tangentially
    assert split["tangential_p90_deg"] > 0.05


def test_two_crystals_far_apart_index_as_two_lattices_with_their_angle(orientations):
    first, turned = orientations
    evidence = lattice_evidence(index_lattices(_spots([first, turned[20.0]])))
    assert evidence["n_lattices"] == 2 and evidence["fraction_other"] > 0.3
    assert evidence["log_misorientation"] == pytest.approx(np.log1p(20.0), abs=0.02)


def test_no_lattice_gives_the_evidence_of_nothing_indexed():
    vectors = np.random.default_rng(3).uniform(-0.4, 0.4, (200, 3))
    evidence = lattice_evidence(index_lattices(vectors))
    assert evidence["fraction_unindexed"] == 1.0 and evidence["n_lattices"] == 0.0


def test_the_evidence_network_learns_the_label_from_the_features():
    """Fitted to rows whose label follows one feature, the network ranks held-out rows by it; its
    card-able architecture round-trips."""
    from xrais.models.evidence import EvidenceArchitecture, EvidenceNet
    from xrais.training.evidence import fit_evidence_net
    from xrais.training.metrics import roc_auc

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(600, len(FEATURE_NAMES)))
    labels = (rows[:, FEATURE_NAMES.index("close_pairs")] + 0.3 * rng.normal(size=600) > 0).astype(float)
    network = fit_evidence_net(rows[:400], labels[:400], epochs=200)
    probability = network.probability([dict(zip(FEATURE_NAMES, row)) for row in rows[400:]])
    assert roc_auc(probability, labels[400:]) > 0.9
    assert ((probability >= 0) & (probability <= 1)).all()
    architecture = EvidenceArchitecture.from_dict(network.architecture.as_dict())
    assert architecture == network.architecture and isinstance(EvidenceNet(architecture), EvidenceNet)
    with pytest.raises(ValueError, match="unknown evidence features"):
        EvidenceArchitecture(features=("brightness",))


def test_an_evidence_ensemble_averages_its_members_probabilities_and_reads_one_network_weights(tmp_path):
    """Members trained apart (seed + i) give the mean of the single networks' probabilities; the
    weights of a network written before members existed (``layers.*``) load as a one-member model."""
    import torch

    from xrais.models.evidence import EvidenceArchitecture
    from xrais.models.registry import export, load_network
    from xrais.training.evidence import fit_evidence_net

    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, len(FEATURE_NAMES)))
    labels = (rows[:, 0] - rows[:, 3] + 0.5 * rng.normal(size=300) > 0).astype(float)
    evidence = [dict(zip(FEATURE_NAMES, row)) for row in rows[:50]]
    ensemble = fit_evidence_net(rows, labels, EvidenceArchitecture(members=3), epochs=100, seed=7)
    singles = [fit_evidence_net(rows, labels, epochs=100, seed=seed) for seed in (7, 8, 9)]
    mean = np.mean([network.probability(evidence) for network in singles], axis=0)
    np.testing.assert_allclose(ensemble.probability(evidence), mean, atol=1e-5)
    assert np.ptp([network.probability(evidence) for network in singles], axis=0).max() > 1e-3  # members differ
    assert "mean probability of 3" in ensemble.architecture.label

    single = singles[0]
    path = export(single, str(tmp_path / "one_network"), {"description": "one network"})
    state = {key.replace("members.0.", "layers."): value for key, value in single.state_dict().items()}
    torch.save(state, tmp_path / "one_network.pt")  # as written before members existed
    card = json.loads(open(path).read())
    card["sha256"] = hashlib.sha256((tmp_path / "one_network.pt").read_bytes()).hexdigest()
    open(path, "w").write(json.dumps(card))
    loaded, _ = load_network(path)
    np.testing.assert_allclose(loaded.probability(evidence), single.probability(evidence), rtol=1e-6)


def test_a_split_shows_as_two_populations_turned_by_half_its_angle():
    """Two lattices α apart indexed as one: the two-sided rotation fitted to the offsets has
    |ω| ≈ α/2 and explains most of them; one lattice of the same scatter (0.017° per spot) leaves
    them one population (little explained, |ω| a fraction of the split's)."""
    from xrais.lattice import index_lattices
    from xrais.lattice.evidence import two_sided_rotation
    from xrais.sim import axis_angle_rotation, random_rotation

    from latticehelpers import ewald_cap_spots

    rng = np.random.default_rng(1)
    cell, turn = np.diag([38.0, 44.0, 52.0]), random_rotation(rng)
    found = {}
    for split in (0.0, 1.0):
        spots = [ewald_cap_spots(cell, turn, d_min=1.8, on_sphere=True, excitation=0.003)]
        if split:
            spots.append(ewald_cap_spots(cell, axis_angle_rotation(rng.normal(size=3), np.radians(split)) @ turn,
                                         d_min=1.8, on_sphere=True, excitation=0.003))
        vectors = np.concatenate(spots)
        vectors += rng.normal(size=vectors.shape) * 3e-4 * np.linalg.norm(vectors, axis=1, keepdims=True)
        result = index_lattices(vectors)
        assert result.n_lattices == 1  # the split indexes as one (compromise) lattice
        lattice = result.lattices[0]
        found[split] = two_sided_rotation(result.vectors[lattice.indexed], lattice.miller[lattice.indexed],
                                          lattice.real_vectors)
    explained, separation, omega = found[1.0]
    assert np.degrees(np.linalg.norm(omega)) == pytest.approx(0.5, abs=0.05)
    assert explained > 0.75 and separation > 10
    single_explained, single_separation, single_omega = found[0.0]
    assert single_explained < 0.5 and single_separation < 4 and np.degrees(np.linalg.norm(single_omega)) < 0.1


def test_split_spots_pair_with_opposite_offsets_and_a_distorted_single_does_not():
    """A 1° split indexed as one lattice: each reflection's two spots lie side by side, off the
    mean node in opposite senses, so most spots' nearest neighbour is on the other side of the
    two-sided rotation (split_pairing > 0.6). One crystal seen through a geometry error that turns
    the spots by up to ±0.5° smoothly across the detector (one side one way, the other the other):
    the two-sided rotation explains a third or more of its offsets (a split's: all), but neighbours agree
    (split_pairing < 0.2). Random scatter of one crystal: about half."""
    from xrais.spotfinder import LAB_BEAM, LAB_FAST

    rng = np.random.default_rng(1)
    cell, turn = np.diag([38.0, 44.0, 52.0]), random_rotation(rng)
    crystal = ewald_cap_spots(cell, turn, d_min=1.8, on_sphere=True, excitation=0.003)
    second = ewald_cap_spots(cell, axis_angle_rotation(rng.normal(size=3), np.radians(1.0)) @ turn, d_min=1.8,
                             on_sphere=True, excitation=0.003)
    side = crystal @ LAB_FAST / np.abs(crystal @ LAB_FAST).max()  # −1…1 across the detector
    distorted = np.array([axis_angle_rotation(LAB_BEAM, np.radians(0.5 * s)) @ r
                          for s, r in zip(np.sign(side), crystal)])
    scattered = crystal + rng.normal(size=crystal.shape) * 1e-3 * np.linalg.norm(crystal, axis=1, keepdims=True)
    pairing = {}
    for name, vectors in (("split", np.concatenate([crystal, second])), ("distorted", distorted),
                          ("scattered", scattered)):
        result = index_lattices(vectors)
        assert result.n_lattices == 1
        pairing[name] = lattice_evidence(result)
    assert pairing["split"]["split_pairing"] > 0.8
    assert pairing["distorted"]["split_explained"] > 0.3 and pairing["distorted"]["split_pairing"] < 0.2
    assert 0.3 < pairing["scattered"]["split_pairing"] < 0.7


def _angle_deg(cell, other):
    """The rotation angle (degrees) between two cells of the same shape (rows, Å)."""
    rotation = np.linalg.inv(cell) @ other
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


def test_the_tangential_cell_sits_where_the_spots_are_on_the_sphere():
    """Spots where a still records them (each off its node along the sphere's normal by its
    excitation error) of nodes all on one side of the sphere, as a wedge or a partial band leaves
    them: the cell fitted to their whole offsets (as the indexing fits it) is pulled off the true
    one; the tangential cell is the true cell, from there or from a start turned by 0.5°."""
    from xrais.lattice.evidence import tangential_cell
    from xrais.spotfinder import LAB_BEAM

    rng = np.random.default_rng(4)
    turn = random_rotation(rng)
    true_cell = CELL @ turn.T
    nodes = ewald_cap_spots(CELL, turn, d_min=1.8, excitation=0.004)
    outside = np.linalg.norm(nodes + LAB_BEAM, axis=1) > 1.0  # one side of the sphere only
    nodes = nodes[outside]
    s1 = nodes + LAB_BEAM
    spots = s1 / np.linalg.norm(s1, axis=1, keepdims=True) - LAB_BEAM
    miller = np.rint(nodes @ true_cell.T).astype(int)
    whole_fit = np.linalg.inv(np.linalg.lstsq(miller.astype(float), spots, rcond=None)[0]).T
    assert len(spots) > 50
    assert np.abs(whole_fit - true_cell).max() > 0.05  # Å: pulled by the one-sided excitation errors
    for start in (whole_fit, true_cell @ axis_angle_rotation(rng.normal(size=3), np.radians(0.5)).T):
        assert np.abs(tangential_cell(spots, miller, start) - true_cell).max() < 1e-6
    # too few spots to fix nine numbers: the cell given is returned
    assert tangential_cell(spots[:4], miller[:4], whole_fit) is whole_fit


def test_a_lattice_turned_as_a_whole_is_not_read_as_a_split(orientations):
    """One crystal whose indexed cell is turned 0.5° off its spots (every spot off its node the same
    way): the tangential features measure the spots from the tangential cell, so they read as one
    crystal, where a 1° split still reads as one."""
    import dataclasses

    first, turned = orientations
    rng = np.random.default_rng(2)
    spots = _spots([first], on_sphere=True)
    spots += rng.normal(size=spots.shape) * 3e-4 * np.linalg.norm(spots, axis=1, keepdims=True)  # 0.017°
    result = index_lattices(spots)
    lattice = result.lattices[0]
    tilted = dataclasses.replace(lattice, real_vectors=lattice.real_vectors
                                 @ axis_angle_rotation(np.array([0.3, -1.0, 0.5]), np.radians(0.5)).T)
    evidence = lattice_evidence(dataclasses.replace(result, lattices=[tilted]))
    assert evidence["tangential_p90_deg"] < 0.05 and evidence["split_explained"] < 0.5
    assert evidence["split_separation"] < 4
    split = lattice_evidence(index_lattices(_spots([first, turned[1.0]], on_sphere=True)))
    assert split["tangential_p90_deg"] > 0.05
