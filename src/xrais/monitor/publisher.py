"""A test image stream: frames read from files, sent at a set frame rate in the stream format of
:mod:`xrais.monitor.protocol` (PUSH, bound; the feeder connects, as to a detector's stream).

``send`` blocks while the receiver's and this socket's high-water marks are full, so a feeder that
cannot keep up slows the publisher down: the report gives the rate actually reached.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Optional

import numpy as np
import zmq

from ..io.frame import Frame
from ..io.open import open_images
from .protocol import DEFAULT_STREAM, MonitorError, encode, image_header, is_loopback_endpoint, require_token
from .sources import image_template

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PublishReport:
    """Frames sent, seconds from the first to the last send, and the rate asked for (frames/s)."""

    sent: int
    seconds: float
    asked_rate: float

    @property
    def rate(self) -> float:
        """Frames per second actually sent (intervals between sends over their total time)."""
        return (self.sent - 1) / self.seconds if self.seconds > 0 else float("inf")


def stream_pixels(frame: Frame) -> np.ndarray:
    """The frame's pixels with its invalid pixels set to -1 (the stream's convention), C order."""
    pixels = frame.pixels
    if not frame.mask.any():
        return np.ascontiguousarray(pixels)
    if pixels.dtype.kind == "u":
        pixels = pixels.astype(np.int32 if pixels.dtype.itemsize < 4 else np.int64)
    return np.ascontiguousarray(np.where(frame.mask, -1, pixels).astype(pixels.dtype, copy=False))


def frame_identity(frame: Frame, run: Optional[str]):
    """(run, image number) of a frame read from a file: the file name's template and number
    (``lyso_1_00017.cbf`` → lyso_1_#####.cbf, 17), or the frame index + 1 in a multi-frame file."""
    template, number = image_template(frame.source)
    if frame.metadata.get("multi_frame") or number is None:
        return run or os.path.basename(frame.source), frame.index + 1
    return run or template, number


def publish(inputs, bind: str = DEFAULT_STREAM, rate: float = 10.0, run: Optional[str] = None,
            token: Optional[str] = None, hwm: int = 16, stop: Optional[threading.Event] = None) -> PublishReport:
    """Send every frame of the inputs (files, folders, globs, NeXus masters) at ``rate`` frames/s
    (0: as fast as the receiver takes them); run: series id (default from the file names)."""
    require_token(f"the stream endpoint {bind}", is_loopback_endpoint(bind), token)
    stop = stop or threading.Event()
    context = zmq.Context()
    pusher = context.socket(zmq.PUSH)
    pusher.setsockopt(zmq.SNDHWM, int(hwm))
    try:
        pusher.bind(bind)
    except zmq.ZMQError as exc:
        context.destroy(linger=0)
        raise MonitorError(f"cannot publish on {bind}: {exc}") from None
    log.info("publish: sending on %s at %s frames/s", bind, f"{rate:g}" if rate > 0 else "full speed")
    sent, first = 0, None
    try:
        for frame in open_images(inputs, on_error="skip"):
            if first is not None and rate > 0:
                time.sleep(max(0.0, first + sent / rate - time.monotonic()))
            run_id, number = frame_identity(frame, run)
            pixels = stream_pixels(frame)
            header = encode(image_header(run_id, number, frame.geometry, pixels.dtype, frame.label), token)
            while not pusher.poll(200, zmq.POLLOUT):  # blocked by the receiver's backpressure
                if stop.is_set():
                    break
            if stop.is_set():
                break
            pusher.send_multipart([header, pixels], copy=False)
            first = time.monotonic() if first is None else first
            sent += 1
        seconds = time.monotonic() - first if first is not None else 0.0
        log.info("publish: waiting for the receiver to take the last frames")
    finally:
        pusher.close(linger=0 if stop.is_set() else 60_000)  # at most a minute for the last frames
        context.term()
    report = PublishReport(sent, seconds, rate)
    log.info("publish: sent %d frame(s) in %.2f s (%.1f frames/s%s)", sent, seconds, report.rate,
             f", {rate:g} asked" if rate > 0 else "")
    return report
