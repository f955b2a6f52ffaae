"""xrais.monitor: every image analysed as it is collected, results stored and shown live.

After Interceptor (Mendez et al., section 3.5, Figure 16)::

    detector files ──► FEEDER ◄─── asks for work ─── WORKER (Predictor, CPU or GPU) × N
    image stream ───►  bounded ───── frame ────────►   on this machine or others
                       queue  ◄──── result ─────────
                         │
                         └─ rows ─► COLLECTOR ─ SQLite (WAL) ─ HTTP: page + JSON API ─► viewers

* **Feeder** (:mod:`.feeder`): frames from a watched folder (:mod:`.sources`: miniCBF/SMV files
  once whole, NeXus series frame by frame as data files appear) and/or a ZeroMQ image stream;
  a bounded queue (``wait``: nothing dropped, the stream is slowed by high-water marks; or
  ``skip``: the oldest queued frame is skipped, logged and recorded); frames go to the workers
  that ask (credit-based load balancing), frames of workers gone silent go back to the queue;
  results go on to the collector until it confirms them.
* **Workers** (:mod:`.worker`): run :class:`xrais.predict.Predictor`; join and leave at any time.
* **Collector** (:mod:`.collector`, :mod:`.store`): one SQLite row per image, keyed by
  (run, image, frame) so that storing is idempotent; HTTP API and the live strip chart page.

Ports (defaults, all on 127.0.0.1; any ZeroMQ endpoint may be given):

====================  =========================  ======================================
what                  endpoint                   who binds / who connects
====================  =========================  ======================================
image stream          tcp://127.0.0.1:5555       publisher (detector) binds PUSH; feeder PULL
work                  tcp://127.0.0.1:5556       feeder binds ROUTER; workers DEALER
results               tcp://127.0.0.1:5557       collector binds ROUTER; feeders DEALER
page + API            http://127.0.0.1:8080/     collector
====================  =========================  ======================================

Security: everything binds to loopback by default. Serving HTTP or a ZeroMQ endpoint on another
interface needs a token (``token=`` or ``XRAIS_MONITOR_TOKEN``): every ZeroMQ header must carry
it, and every HTTP request (``X-Xrais-Token`` header or ``?token=``). No request makes the
collector read a file: the page comes from the package, images are looked up in the store.

Message formats: :mod:`xrais.monitor.protocol`. Programs: ``xrais.monitor run|feeder|collector|
worker|publish`` (:mod:`xrais.command_line.monitor`); ``docs/monitor.md`` has a walk-through.
"""
from .collector import Collector
from .feeder import Feeder
from .local import LocalMonitor
from .protocol import DEFAULT_HTTP_PORT, DEFAULT_INGEST, DEFAULT_STREAM, DEFAULT_WORK, TOKEN_ENV, MonitorError
from .publisher import PublishReport, publish
from .sources import FolderWatcher
from .store import ResultStore, StoreReader
from .worker import Worker

__all__ = ["Collector", "Feeder", "FolderWatcher", "LocalMonitor", "MonitorError", "PublishReport", "ResultStore",
           "StoreReader", "Worker", "publish", "DEFAULT_HTTP_PORT", "DEFAULT_INGEST", "DEFAULT_STREAM", "DEFAULT_WORK",
           "TOKEN_ENV"]
