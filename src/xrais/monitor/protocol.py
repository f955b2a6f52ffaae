"""The wire formats of xrais.monitor (version 1) and the checks every socket applies.

Every ZeroMQ message starts with one UTF-8 JSON object (the header); frames of pixels add the raw
buffer as a second part. Every header carries ``"token"`` when the sender has one configured;
a receiver with a token configured refuses a header without the same token.

Image stream (publisher/detector PUSH → feeder PULL), two parts::

    {"xrais": 1, "type": "image", "run": "lyso_1", "image": 17,
     "geometry": {"distance": 200.0, "wavelength": 0.979, "pixel_size": 0.172,
                  "beam_centre": [1231.5, 1263.5], "shape": [2527, 2463], "detector": "PILATUS 6M"},
     "dtype": "<i4", "source": "/data/lyso_1_00017.cbf", "token": "..."}
    <shape[0] × shape[1] pixels of dtype, C order (slow, fast); negative values are invalid pixels>

``run`` (text) and ``image`` (integer ≥ 0, the image number) identify the frame; ``source`` is
optional, for display. Units: distance and pixel_size mm, wavelength Å, beam_centre (fast, slow)
pixels from the outer corner of pixel (0, 0). A detector that does not face the beam (a 2θ arm)
adds ``"fast_axis"`` and ``"slow_axis"`` (lab unit vectors, :mod:`xrais.io.geometry`); distance is
then the perpendicular distance and beam_centre where the beam meets the detector plane.

Work (workers DEALER → feeder ROUTER; a worker asks for work, the feeder never pushes unasked):

* worker → feeder: ``{"type": "hello", "worker", "host", "pid", "credit"}`` (ready for ``credit``
  jobs); ``{"type": "heartbeat", "worker", "host", "pid", "credit", "holding": [job ids]}`` every
  second; ``{"type": "result", "worker", "job", "row"}`` (one job done: ready for one more);
  ``{"type": "bye", "worker"}`` when leaving.
* feeder → worker: ``{"type": "job", "job", "run", "image", "frame", "number", "since", "path"}``
  for a file (the worker reads ``path``, frame ``frame`` of a multi-frame file), or the same with
  ``"stream": <image header>`` and the pixel buffer as second part; ``{"type": "refused",
  "reason"}`` to a worker without the right token.

Results (feeder DEALER → collector ROUTER):

* feeder → collector: ``{"type": "rows", "feeder", "rows": [row, ...]}``, answered by
  ``{"type": "ack", "keys": [[run, image, frame], ...]}`` once stored; the feeder sends again
  what is not acknowledged within a few seconds (storage is idempotent). ``{"type": "status",
  "feeder", ...}`` (queue, lag, workers) every half second, not answered. ``{"type": "stored",
  "feeder", "folder"}`` when a feeder starts on a folder, answered by ``{"type": "stored", "keys":
  [[run, image, frame], ...]}`` (the folder's frames stored already: a restarted feeder skips them).
* A row: ``{"run", "image", "frame", "number", "source", "status": "ok"|"error"|"skipped",
  "error", "worker", "received", "analysed", "result"}`` — times in Unix seconds, ``result`` the
  :class:`xrais.predict.Predictor` result dict; the key is (run, image, frame).
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import math
import os
import re
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..io.errors import GeometryError, XraisError
from ..io.geometry import Geometry

PROTOCOL_VERSION = 1
#: Default endpoints: the image stream (the publisher binds), work (the feeder binds), results (the collector binds).
DEFAULT_STREAM = "tcp://127.0.0.1:5555"
DEFAULT_WORK = "tcp://127.0.0.1:5556"
DEFAULT_INGEST = "tcp://127.0.0.1:5557"
DEFAULT_HTTP_PORT = 8080
#: Environment variable holding the token (keeps it off command lines and process listings).
TOKEN_ENV = "XRAIS_MONITOR_TOKEN"
#: Largest frame accepted from a stream (pixels).
MAX_PIXELS = 200_000_000

_TCP = re.compile(r"^tcp://(?:\[(?P<ip6>[^\]]+)\]|(?P<host>[^:/]+)):(?P<port>\d+|\*)$")


class MonitorError(XraisError):
    """A monitor component cannot start or go on (bad configuration, refused by a peer)."""


class ProtocolError(ValueError):
    """A message that does not follow the wire format."""


def resolve_token(token: Optional[str]) -> Optional[str]:
    """The token given, else the one in ``XRAIS_MONITOR_TOKEN``, else None."""
    return token or os.environ.get(TOKEN_ENV) or None


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name, a host name or a wildcard


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ZeroMQ endpoints reachable from this machine only (loopback TCP, ipc, inproc)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = _TCP.match(endpoint)
    if not match:
        raise MonitorError(f"endpoint {endpoint!r} is not tcp://host:port, ipc://path or inproc://name")
    return is_loopback_host(match.group("ip6") or match.group("host"))


def require_token(what: str, local: bool, token: Optional[str]) -> None:
    """Refuse to serve on other interfaces without a token."""
    if not local and not token:
        raise MonitorError(f"{what} is reachable from other machines: set token=... (or {TOKEN_ENV}) "
                           "so that only holders of the token are served, or bind to 127.0.0.1")


def token_matches(header: Dict[str, Any], token: Optional[str]) -> bool:
    """True when no token is configured or the header carries the same one."""
    if not token:
        return True
    given = header.get("token")
    return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())


def encode(header: Dict[str, Any], token: Optional[str] = None) -> bytes:
    """A header as sent (with the token when there is one)."""
    if token:
        header = dict(header, token=token)
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode()


def decode(data: bytes) -> Dict[str, Any]:
    """The header of a message, or :class:`ProtocolError`."""
    try:
        header = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("header is not a JSON object with a 'type'")
    return header


def finite(value):
    """JSON-safe copy: NaN and infinities become None, numpy scalars and arrays become Python values."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return finite(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- image frames on the stream ---------------------------------------------------------------------
def image_header(run: str, image: int, geometry: Geometry, dtype: np.dtype,
                 source: Optional[str] = None) -> Dict[str, Any]:
    """The header of one stream frame."""
    fields = {"distance": geometry.distance, "wavelength": geometry.wavelength,
              "pixel_size": geometry.pixel_size, "beam_centre": list(geometry.beam_centre),
              "shape": list(geometry.shape), "detector": geometry.detector}
    if not geometry.faces_beam:
        fields.update(fast_axis=list(geometry.fast_axis), slow_axis=list(geometry.slow_axis))
    header = {
        "xrais": PROTOCOL_VERSION, "type": "image", "run": run, "image": int(image),
        "geometry": fields,
        "dtype": np.dtype(dtype).str,
    }
    if source:
        header["source"] = source
    return header


def check_image_header(header: Dict[str, Any]) -> Tuple[str, int]:
    """(run, image number) of a stream frame header, or :class:`ProtocolError`."""
    run, image = header.get("run"), header.get("image")
    if header.get("type") != "image":
        raise ProtocolError(f"expected an image header, got type {header.get('type')!r}")
    if not isinstance(run, str) or not run or len(run) > 1024:
        raise ProtocolError("image header has no 'run' (series id text)")
    if not isinstance(image, int) or isinstance(image, bool) or image < 0:
        raise ProtocolError("image header has no 'image' number (integer >= 0)")
    return run, image


def pixels_from_message(header: Dict[str, Any], buffer) -> Tuple[np.ndarray, Geometry]:
    """Pixels (slow, fast) and geometry of a stream frame; :class:`ProtocolError` or
    :class:`~xrais.io.GeometryError` when they do not add up."""
    fields = header.get("geometry")
    if not isinstance(fields, dict):
        raise ProtocolError("image header has no 'geometry' object")
    try:
        dtype = np.dtype(header.get("dtype"))
    except TypeError:
        raise ProtocolError(f"unknown dtype {header.get('dtype')!r}") from None
    if dtype.kind not in "iuf" or dtype.itemsize > 8:
        raise ProtocolError(f"dtype {dtype.str} is not a numeric pixel type")
    shape = fields.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(n, int) and n > 0 for n in shape)
            or shape[0] * shape[1] > MAX_PIXELS):
        raise ProtocolError(f"geometry shape {shape!r} is not two positive integers (slow, fast)")
    expected = shape[0] * shape[1] * dtype.itemsize
    if buffer is None or len(buffer) != expected:
        raise ProtocolError(f"pixel buffer of {0 if buffer is None else len(buffer)} bytes, expected {expected} "
                            f"({shape[0]}×{shape[1]} {dtype.str})")
    try:
        axes = {name: tuple(fields[name]) for name in ("fast_axis", "slow_axis") if name in fields}
        geometry = Geometry(distance=fields["distance"], wavelength=fields["wavelength"],
                            pixel_size=fields["pixel_size"], beam_centre=tuple(fields["beam_centre"]),
                            shape=tuple(shape), detector=str(fields.get("detector") or "generic"), **axes)
    except GeometryError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"incomplete geometry ({type(exc).__name__}: {exc})") from None
    pixels = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    return pixels, geometry
