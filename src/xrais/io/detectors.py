"""Detector catalogue: one declarative table of the detector models xrais knows.

Each entry gives the full-frame shape (slow, fast), the pixel size (mm), the module layout (module
shape and the gaps between modules, in pixels), the max-pool factor the method uses for that
detector (paper section 2.2: 2 for PILATUS 6M, 4 for EIGER 16M / JUNGFRAU 16M / Rayonix), and a few
properties the simulator needs. Nothing else in xrais branches on detector names: add a row here
(or register one from a plugin, see :func:`register`) to teach xrais a new detector.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class DetectorModel:
    """One detector model.

    shape: (slow, fast) pixels; pixel_size: mm; downsample: max-pool block edge (pixels);
    module_shape: (slow, fast) pixels of one module, None for a monolithic sensor;
    module_gap: (slow, fast) pixels between modules; names: regular expressions matched
    (case-insensitively) against detector names found in headers; family: a short family name;
    counting: True for photon-counting pixel arrays (no read noise), False for integrating CCDs;
    read_noise: electronic noise (photons, RMS), used by the simulator and the spot finder;
    gain: counts its images record per photon (1 for photon counters and the CCD images here; the
    CS-PAD's ADU: see its entry), by which the simulator scales what it records and the spot
    finder's noise model the Poisson variance;
    curved: True when the sensor is not flat (not supported by the flat-detector geometry);
    trusted_max: the highest count trusted when an image does not say (an array given to the API,
    a header without a cut-off); None: no limit beyond the rules of :func:`xrais.io.frame.invalid_mask`.
    """

    name: str
    shape: Tuple[int, int]
    pixel_size: float
    downsample: int
    family: str
    names: Tuple[str, ...] = ()
    module_shape: Optional[Tuple[int, int]] = None
    module_gap: Tuple[int, int] = (0, 0)
    counting: bool = True
    read_noise: float = 0.0
    gain: float = 1.0
    curved: bool = False
    trusted_max: Optional[float] = None

    def __post_init__(self):
        if self.module_shape is not None:
            ns, nf = self.module_shape
            gs, gf = self.module_gap
            rows = (self.shape[0] + gs) / (ns + gs)
            cols = (self.shape[1] + gf) / (nf + gf)
            if rows != int(rows) or cols != int(cols):
                raise ValueError(f"{self.name}: modules {self.module_shape} + gaps {self.module_gap} do not tile {self.shape}")

    @property
    def size_mm(self) -> Tuple[float, float]:
        """Sensitive area (slow, fast) in mm."""
        return (self.shape[0] * self.pixel_size, self.shape[1] * self.pixel_size)

    def gap_mask(self) -> np.ndarray:
        """Boolean (slow, fast) image, True on the inter-module gaps."""
        mask = np.zeros(self.shape, dtype=bool)
        if self.module_shape is None:
            return mask
        for axis, (module, gap) in enumerate(zip(self.module_shape, self.module_gap)):
            if gap == 0:
                continue
            index = np.arange(self.shape[axis]) % (module + gap) >= module
            if axis == 0:
                mask[index, :] = True
            else:
                mask[:, index] = True
        return mask

    def matches(self, text: str) -> bool:
        return any(re.search(pattern, text, flags=re.IGNORECASE) for pattern in (re.escape(self.name),) + self.names)


#: PILATUS counters have 20 bits (2^20 = 1,048,576). Values within 5 % of that are counter
#: overflow or broken pixels (the thaumatin scan of ../shared/data has pixels of 1,038,335 and
#: 1,046,527 counts beside the beam); the cut-offs the detectors write are below it: PILATUS2
#: 1,048,500 without rate correction, PILATUS3 with it far lower (91,795 and 115,897 in those files).
PILATUS_TRUSTED_MAX = 1_000_000

# fmt: off
_CATALOGUE: Tuple[DetectorModel, ...] = (
    # DECTRIS PILATUS: modules 487 x 195 (fast x slow), gaps 7 (fast) and 17 (slow) pixels.
    DetectorModel("PILATUS 6M", (2527, 2463), 0.172, 2, "PILATUS", (r"PILATUS\s*(3|4)?\s*(R|S|X)?\s*6M", r"PILATUS.*6M"),
                  module_shape=(195, 487), module_gap=(17, 7), trusted_max=PILATUS_TRUSTED_MAX),
    DetectorModel("PILATUS 2M", (1679, 1475), 0.172, 2, "PILATUS", (r"PILATUS\s*(3|4)?\s*(R|S|X)?\s*2M",),
                  module_shape=(195, 487), module_gap=(17, 7), trusted_max=PILATUS_TRUSTED_MAX),
    # The small PILATUS detectors: no 512 × 512 quadrant of the paper's, so their max-pool is 1 (0.172 mm,
    # about the 0.15–0.34 mm pooled pixels of the larger detectors); the networks that need quadrants of
    # a size say so, the whole-frame predictors read them.
    DetectorModel("PILATUS 1M", (1043, 981), 0.172, 1, "PILATUS", (r"PILATUS\s*(3|4)?\s*(R|S|X)?\s*1M",),
                  module_shape=(195, 487), module_gap=(17, 7), trusted_max=PILATUS_TRUSTED_MAX),
    DetectorModel("PILATUS 300K-W", (195, 1475), 0.172, 1, "PILATUS", (r"PILATUS\s*(3|4)?\s*(R|S|X)?\s*300\s*K\s*-?\s*W",),
                  module_shape=(195, 487), module_gap=(17, 7), trusted_max=PILATUS_TRUSTED_MAX),
    DetectorModel("PILATUS 300K", (619, 487), 0.172, 1, "PILATUS", (r"PILATUS\s*(3|4)?\s*(R|S|X)?\s*300\s*K(?!\s*-?\s*W)",),
                  module_shape=(195, 487), module_gap=(17, 7), trusted_max=PILATUS_TRUSTED_MAX),
    DetectorModel("PILATUS 100K", (195, 487), 0.172, 1, "PILATUS", (r"PILATUS\s*(3|4)?\s*(R|S|X)?\s*100\s*K",),
                  module_shape=(195, 487), trusted_max=PILATUS_TRUSTED_MAX),
    DetectorModel("PILATUS 12M", (5071, 2463), 0.172, 2, "PILATUS", (r"PILATUS\s*(3|4)?\s*12M", r"P12M"),
                  curved=True, trusted_max=PILATUS_TRUSTED_MAX),
    # DECTRIS EIGER: modules 1030 x 514, gaps 10 (fast) and 37 (slow) pixels.
    DetectorModel("EIGER 16M", (4371, 4150), 0.075, 4, "EIGER", (r"EIGER\s*(X|R)?\s*16M",),
                  module_shape=(514, 1030), module_gap=(37, 10)),
    DetectorModel("EIGER 9M", (3269, 3110), 0.075, 4, "EIGER", (r"EIGER\s*(X|R)?\s*9M",),
                  module_shape=(514, 1030), module_gap=(37, 10)),
    DetectorModel("EIGER 4M", (2167, 2070), 0.075, 2, "EIGER", (r"EIGER\s*(X|R)?\s*4M",),
                  module_shape=(514, 1030), module_gap=(37, 10)),
    DetectorModel("EIGER 1M", (1065, 1030), 0.075, 2, "EIGER", (r"EIGER\s*(X|R)?\s*1M",),
                  module_shape=(514, 1030), module_gap=(37, 10)),
    # DECTRIS EIGER2: modules 1028 x 512, gaps 12 (fast) and 38 (slow) pixels.
    DetectorModel("EIGER2 XE 16M", (4362, 4148), 0.075, 4, "EIGER", (r"EIGER\s*2\s*(XE|X|S|R)?\s*16M",),
                  module_shape=(512, 1028), module_gap=(38, 12)),
    DetectorModel("EIGER2 XE 9M", (3262, 3108), 0.075, 4, "EIGER", (r"EIGER\s*2\s*(XE|X|S|R)?\s*9M",),
                  module_shape=(512, 1028), module_gap=(38, 12)),
    DetectorModel("EIGER2 XE 4M", (2162, 2068), 0.075, 2, "EIGER", (r"EIGER\s*2\s*(XE|X|S|R)?\s*4M",),
                  module_shape=(512, 1028), module_gap=(38, 12)),
    DetectorModel("EIGER2 XE 1M", (1062, 1028), 0.075, 2, "EIGER", (r"EIGER\s*2\s*(XE|X|S|R)?\s*1M",),
                  module_shape=(512, 1028), module_gap=(38, 12)),
    # PSI JUNGFRAU 16M, assembled from 32 modules of 1024 x 512 (the per-panel geometry places them).
    DetectorModel("JUNGFRAU 16M", (4434, 4218), 0.075, 4, "JUNGFRAU", (r"JUNGFRAU\s*16M", r"JF16M")),
    # JUNGFRAU 4M and 1M as assembled frames: modules of 1030 x 514 (the double-size pixels between
    # chips counted twice), 8 (fast) and 36 (slow) pixels apart.
    DetectorModel("JUNGFRAU 4M", (2164, 2068), 0.075, 2, "JUNGFRAU", (r"JUNGFRAU\s*4M", r"JF4M"),
                  module_shape=(514, 1030), module_gap=(36, 8)),
    DetectorModel("JUNGFRAU 1M", (1064, 1030), 0.075, 2, "JUNGFRAU", (r"JUNGFRAU\s*1M", r"JF1M"),
                  module_shape=(514, 1030), module_gap=(36, 0)),
    # Rayonix (integrating CCDs); the MX340-HS in its usual 2x2 binning (the paper's "Rayonix 345"
    # format) and its 4x4 binned XFEL mode keep ~0.35 mm downsampled pixels.
    DetectorModel("Rayonix MX340-HS", (3840, 3840), 0.08854, 4, "Rayonix", (r"MX\s*-?340", r"Rayonix\s*345", r"MX\s*-?345"),
                  counting=False, read_noise=3.0),
    DetectorModel("Rayonix MX340-HS 4x4", (1920, 1920), 0.17708, 2, "Rayonix", (),
                  counting=False, read_noise=3.0),
    DetectorModel("Rayonix MX325", (4096, 4096), 0.079346, 4, "Rayonix", (r"MX\s*-?325",),
                  counting=False, read_noise=3.0),
    DetectorModel("Rayonix MX300-HS", (3840, 3840), 0.078125, 4, "Rayonix", (r"MX\s*-?300",),
                  counting=False, read_noise=3.0),
    DetectorModel("Rayonix MX225", (3072, 3072), 0.073242, 4, "Rayonix", (r"MX\s*-?225",),
                  counting=False, read_noise=3.0),
    # MX170-HS: 170 mm square, 3840 x 3840 pixels of 44 µm, usually recorded 2x2 binned.
    DetectorModel("Rayonix MX170-HS", (1920, 1920), 0.08854, 4, "Rayonix", (r"MX\s*-?170",),
                  counting=False, read_noise=3.0),
    # ADSC Quantum CCDs (binned modes, as written by the beamlines).
    DetectorModel("ADSC Q315", (3072, 3072), 0.10259, 2, "ADSC", (r"Q\s*315", r"Q315r"), counting=False, read_noise=3.0),
    DetectorModel("ADSC Q315 unbinned", (6144, 6144), 0.0513, 4, "ADSC", (), counting=False, read_noise=3.0),
    DetectorModel("ADSC Q4", (2304, 2304), 0.0816, 2, "ADSC", (r"Q\s*4\b", r"Q4r?"), counting=False, read_noise=3.0),
    DetectorModel("ADSC Q210", (2048, 2048), 0.1024, 2, "ADSC", (r"Q\s*210",), counting=False, read_noise=3.0),
    # SLAC CS-PAD (assembled from 64 ASICs of 185 x 194 pixels), pedestal-subtracted ADU as
    # cctbx.xfel writes them: 25 ADU per photon is the gain DIALS's own tests give its dispersion
    # threshold on the thermolysin stills here (dials stills_process tests, LCLS CS-PAD); with
    # gain 1 their noise passes the threshold as ~20,000 "spots".
    DetectorModel("CS-PAD", (1765, 1765), 0.10992, 2, "CSPAD", (r"CS[- ]?PAD",), counting=False, read_noise=1.0,
                  gain=25.0),
)
# fmt: on

_EXTRA: Dict[str, DetectorModel] = {}
_SOURCES: List[Callable[[], Iterable[DetectorModel]]] = []


def catalogue() -> Tuple[DetectorModel, ...]:
    """Every known detector model: built-ins, then those registered at run time, then those of the
    registered sources (the installed plugins')."""
    return _CATALOGUE + tuple(_EXTRA.values()) + tuple(model for source in _SOURCES for model in source())


def register(model: DetectorModel) -> None:
    """Add (or replace) a detector model."""
    _EXTRA[model.name] = model


def register_source(source: Callable[[], Iterable[DetectorModel]]) -> None:
    """Add a callable that returns detector models, asked at every catalogue look-up. The plugin
    layer registers its ``xrais_detector_models`` hook here, so that this package imports nothing
    above it."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def get(name: str) -> DetectorModel:
    """The catalogue entry with this exact name (KeyError with the known names otherwise)."""
    for model in catalogue():
        if model.name.lower() == name.lower():
            return model
    raise KeyError(f"unknown detector model {name!r}; known: {', '.join(m.name for m in catalogue())}")


def find(name: Optional[str] = None, shape: Optional[Iterable[int]] = None,
         pixel_size: Optional[float] = None) -> Optional[DetectorModel]:
    """Best catalogue match for a header's detector name and/or image shape (slow, fast) and pixel size (mm).

    A name match wins when the shape (if given) agrees; otherwise an exact shape + pixel size match.
    """
    shape = tuple(int(v) for v in shape) if shape is not None else None

    def shape_ok(model):
        return shape is None or model.shape == shape

    def pixel_ok(model):
        return pixel_size is None or abs(model.pixel_size - pixel_size) <= 0.002 * model.pixel_size + 1e-6

    if name:
        for model in catalogue():
            if model.name.lower() == name.lower():
                return model
        named = [m for m in catalogue() if m.matches(name)]
        for model in named:
            if shape_ok(model) and pixel_ok(model):
                return model
        if named and shape is None:
            return named[0]
    if shape is not None:
        for model in catalogue():
            if model.shape == shape and pixel_ok(model):
                return model
    return None


def _named_model(detector: Optional[str], shape: Iterable[int]) -> Optional[DetectorModel]:
    """The catalogue entry of a frame's detector name (and shape), None for "generic" or unknown."""
    return find(detector, shape) if detector and detector != "generic" else None


def trusted_max_for(detector: Optional[str], shape: Iterable[int]) -> Optional[float]:
    """The catalogue's trusted maximum (counts) for a detector name, None when unknown or unlimited."""
    model = _named_model(detector, shape)
    return None if model is None else model.trusted_max


def noise_for(detector: Optional[str], shape: Iterable[int]) -> Tuple[float, float]:
    """(gain, read noise) of a detector name, in counts as its images record them: counts per
    photon, and the electronic noise in counts RMS (the catalogue's for an integrating detector, 0
    for a photon counter); (1, 0) for an unknown detector."""
    model = _named_model(detector, shape)
    if model is None:
        return 1.0, 0.0
    return model.gain, 0.0 if model.counting else model.read_noise * model.gain


def generic_downsample(shape: Iterable[int]) -> int:
    """Max-pool factor for an unknown detector: two 512-pixel quadrants should span its larger edge."""
    return max(1, int(round(max(int(v) for v in shape) / 1024.0)))


def downsample_for(detector: Optional[str], shape: Iterable[int]) -> int:
    """Max-pool factor of the method for a detector name (catalogue) or, unknown, from its pixel count."""
    model = _named_model(detector, shape)
    if model is not None and model.shape == tuple(int(v) for v in shape):
        return model.downsample
    if model is not None and detector and model.name.lower() == detector.lower():
        return model.downsample
    return generic_downsample(shape)
