"""The CUDA kernel (numba-cuda) agrees with the CPU kernel.

On a machine with a GPU the comparison runs on it; without one it runs in numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1 must be set before numba.cuda is imported, hence a child process). The
simulator executes every GPU thread in Python: the detector is kept tiny.
"""
import os
import subprocess
import sys
import textwrap

from xrais.sim.cuda_kernel import cuda_available

COMPARISON = textwrap.dedent("""
    import numpy as np
    from xrais.io import Geometry
    from xrais.sim import Beam, Lattice, mosaic_rotations, random_rotation, render_bragg, split_lattice
    from xrais.sim.cuda_kernel import cuda_available

    assert cuda_available()
    rng = np.random.default_rng(5)
    table = rng.exponential(100.0, size=(41, 41, 41)).astype(np.float32)
    from xrais.sim import StructureFactors
    structure = StructureFactors(table, (-20, -20, -20))
    geometry = Geometry(60.0, 1.0, 0.172, (-3.0, 5.5), (9, 11))  # near the beam: low-order spots
    beam = Beam(1.0, 1e24, dispersion=0.01, dispersion_steps=2)
    for shape in ("gauss", "gauss_hkl", "square", "round", "tophat"):
        lattice = Lattice.from_cell((20.0, 24.0, 28.0, 88.0, 93.0, 95.0), random_rotation(rng), cells=(3, 4, 2),
                                    shape=shape, mosaic=mosaic_rotations(2.0, 3, rng))
        lattices = split_lattice(lattice, 2, 3.0, rng, mosaic_spread_deg=2.0)
        for path in ("fast", "exact"):
            options = dict(b_factor=12.0, oversample=2, path=path)
            cpu = render_bragg(lattices, structure, beam, geometry, device="cpu", **options)
            gpu = render_bragg(lattices, structure, beam, geometry, device="cuda", **options)
            assert cpu.max() > 0, shape
            np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6 * cpu.max(), err_msg=f"{shape} {path}")
    window = (2, 6, 3, 9)
    cpu = render_bragg(lattices, structure, beam, geometry, device="cpu", window=window)
    gpu = render_bragg(lattices, structure, beam, geometry, device="auto", window=window)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6 * cpu.max())
    assert np.all(gpu[:2] == 0) and np.all(gpu[:, :3] == 0)
    print("ok")
""")


def test_cuda_kernel_agrees_with_cpu_kernel():
    environment = dict(os.environ)
    if not cuda_available():
        environment["NUMBA_ENABLE_CUDASIM"] = "1"
    completed = subprocess.run([sys.executable, "-c", COMPARISON], capture_output=True, text=True, env=environment)
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert completed.stdout.strip().endswith("ok")
