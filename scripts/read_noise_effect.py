"""How much of the resolution model's error on an integrating detector comes from its read noise:
render the same test images (recipe ``resolution``, seed 2, forced detector) with the catalogue's
read noise and without any, and compare the model's predictions for the well-diffracting ones.

    python scripts/read_noise_effect.py [n_images] [detector]     (defaults: 60, Rayonix MX340-HS)

Run from the repository root (XRAIS_CACHE as for xrais.simulate; the structure pool is the
default one, 40 structures, seed 0, as in scripts/train_shipped_models.sh).
"""
import dataclasses
import sys

import numpy as np

from xrais import models
from xrais.io import detectors
from xrais.sim import recipes, training_images
from xrais.sim.pool import StructurePool

MIN_INVERSE_D = 0.45  # Å⁻¹: the range where the model underestimates on the unseen detector
POOL_SIZE = 40


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    detector = sys.argv[2] if len(sys.argv) > 2 else "Rayonix MX340-HS"
    catalogue_noise = detectors.get(detector).read_noise
    pool = StructurePool(POOL_SIZE, seed=0)
    model = models.load("resolution", device="cpu")
    specs = [recipes.sample_spec("resolution", i, 2, POOL_SIZE, detector=detector) for i in range(20 * count)]
    specs = [s for s in specs if not s.blank and s.inverse_d > MIN_INVERSE_D][:count]
    labels = np.array([s.inverse_d for s in specs])
    for read_noise in (catalogue_noise, 0.0):
        predicted = []
        for spec in specs:
            image = training_images.render_training_image(dataclasses.replace(spec, read_noise_photons=read_noise), pool)
            predicted.append(model.predict(image.conditioned[None].astype(np.float32), image.geometry)[0])
        error = np.array(predicted) - labels
        print(f"{detector}, read noise {read_noise:g} photons RMS: {len(specs)} images with 1/d > {MIN_INVERSE_D} Å⁻¹: "
              f"accuracy {np.mean(np.abs(error) <= 0.07):.3f}, bias {error.mean():+.3f} Å⁻¹, MAE {np.abs(error).mean():.3f} Å⁻¹",
              flush=True)


if __name__ == "__main__":
    main()
