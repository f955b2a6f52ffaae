"""Small, learnable training shards in the format ``xrais.simulate`` writes.

Each synthetic quadrant has a noisy background and Bragg-like spots scattered over the disc within
the radius where 1/d is reached (so the spot-covered area encodes the label), plus a bright ring at
that radius; blank images (1/d = 0) have background only. Multi-lattice images have twice the spots
in pairs (a split lattice).
"""
import h5py
import numpy as np

from xrais.models.geometry import radius_from_inverse_d

SIZE = 512
_ROWS, _COLS = np.mgrid[0:SIZE, 0:SIZE]
_RADIUS = np.hypot(_ROWS + 0.5, _COLS + 0.5)
DETECTORS = {"PILATUS 6M": (0.172, 2), "EIGER 16M": (0.075, 4)}
#: Smallest misorientation (degrees) recorded for images of 0–3 lattices.
SPLIT_DEG = {0: 0.0, 1: 0.0, 2: 0.5, 3: 2.0}


def synthetic_image(rng, inverse_d, distance, wavelength, detector, multi=False):
    """uint16 (512, 512) conditioned quadrant whose spots reach 1/d (Å⁻¹)."""
    pixel_size, downsample = DETECTORS[detector]
    image = np.floor(np.sqrt(rng.poisson(3.0, (SIZE, SIZE)))).astype(np.uint16)
    if inverse_d > 0:
        radius = radius_from_inverse_d(inverse_d, wavelength, distance, pixel_size, downsample)
        inside = _RADIUS < radius
        spots = inside & (rng.random((SIZE, SIZE)) < 0.01)
        image[spots] = rng.integers(10, 40, int(spots.sum()))
        if multi:
            image[np.roll(spots, (3, 2), axis=(0, 1)) & inside] = 25
        image[np.abs(_RADIUS - radius) < 2] = 12
    return image


def write_shard(path, images, labels, recipe="resolution", complete=True, seed=7, first_index=0, compression="gzip"):
    """A shard file with the layout xrais.simulate writes."""
    n = len(images)
    with h5py.File(path, "w") as handle:
        handle.attrs.update({"recipe": recipe, "complete": complete, "xrais_version": "test", "seed": seed,
                             "first_index": first_index, "n_images": n})
        options = {"compression": "gzip", "compression_opts": 1, "shuffle": True} if compression == "gzip" else {}
        handle.create_dataset("images", data=np.asarray(images, dtype=np.uint16), chunks=(1, SIZE, SIZE), **options)
        group = handle.create_group("labels")
        for name, values in labels.items():
            if name == "detector":
                group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
            else:
                group.create_dataset(name, data=np.asarray(values))


def make_dataset(folder, n_images, recipe="resolution", shard_size=32, seed=7, blank_fraction=0.1):
    """Write ``n_images`` synthetic images as shards in ``folder``; returns the shard paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for first in range(0, n_images, shard_size):
        n = min(shard_size, n_images - first)
        images, columns = [], {k: [] for k in ("inverse_d", "b_factor", "n_lattices", "is_multi", "blank", "distance",
                                              "wavelength", "pixel_size", "downsample", "detector", "quadrant",
                                              "mosaic_spread", "lattice_split_deg")}
        for _ in range(n):
            detector = str(rng.choice(list(DETECTORS)))
            distance, wavelength = float(rng.uniform(200, 300)), 0.9795
            blank = rng.random() < blank_fraction
            inverse_d = 0.0 if blank else float(rng.uniform(0.15, 0.7))
            lattices = 0 if blank else int(rng.integers(1, 4)) if recipe == "multilattice" else 1
            images.append(synthetic_image(rng, inverse_d, distance, wavelength, detector, multi=lattices > 1))
            pixel_size, downsample = DETECTORS[detector]
            d = 1.0 / inverse_d if inverse_d else np.inf
            for name, value in (("inverse_d", inverse_d), ("b_factor", 4 * d * d + 12), ("n_lattices", lattices),
                                ("is_multi", int(lattices > 1)), ("blank", int(blank)), ("distance", distance),
                                ("wavelength", wavelength), ("pixel_size", pixel_size), ("downsample", downsample),
                                ("detector", detector), ("quadrant", 0), ("mosaic_spread", 0.05),
                                ("lattice_split_deg", SPLIT_DEG[lattices])):
                columns[name].append(value)
        for name, dtype in (("inverse_d", np.float32), ("n_lattices", np.int8), ("is_multi", np.int8),
                            ("blank", np.int8), ("quadrant", np.int8)):
            columns[name] = np.asarray(columns[name], dtype=dtype)
        path = folder / f"{recipe}_{first // shard_size:05d}.h5"
        write_shard(path, images, columns, recipe=recipe, seed=seed, first_index=first)
        paths.append(path)
    return paths
