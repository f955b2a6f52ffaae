"""Security: loopback unless a token is configured; with one, HTTP requests and ZeroMQ messages
without it are refused; no request makes the collector read a file."""
import threading
import urllib.error
import urllib.request

import pytest
import zmq
from monitorhelpers import GEOMETRY, endpoints, free_port, get, image, wait_for

from xrais.command_line.monitor import collector_program, feeder_program
from xrais.monitor import Collector, Feeder, MonitorError, Worker, publish
from xrais.monitor.protocol import encode, image_header
from xrais.predict import Predictor

TOKEN = "s3cret-token"


def test_serving_beyond_loopback_needs_a_token(tmp_path, capsys):
    with pytest.raises(MonitorError, match="reachable from other machines"):
        Collector(str(tmp_path / "db.sqlite"), http_host="0.0.0.0")
    with pytest.raises(MonitorError, match="result endpoint tcp://\\*:5557"):
        Collector(str(tmp_path / "db.sqlite"), ingest="tcp://*:5557")
    with pytest.raises(MonitorError, match="work endpoint"):
        Feeder(folder=str(tmp_path), work="tcp://0.0.0.0:5556")
    with pytest.raises(MonitorError, match="stream endpoint"):
        publish([str(tmp_path)], bind="tcp://eth0:5555")
    assert collector_program(["http.host=0.0.0.0", f"database={tmp_path / 'db.sqlite'}", "output.log=None"]) == 1
    assert "set token=" in capsys.readouterr().err
    assert feeder_program([f"folder={tmp_path}", "work=tcp://*:5556", "output.log=None"]) == 1
    Collector(str(tmp_path / "db.sqlite"), http_host="0.0.0.0", ingest="tcp://*:5557", token=TOKEN)  # allowed


@pytest.fixture()
def guarded(tmp_path):
    """A collector with a token, on loopback."""
    work, ingest, port = endpoints()
    collector = Collector(str(tmp_path / "monitor.sqlite"), ingest=ingest, http_port=port, token=TOKEN)
    collector.start()
    yield collector, work, ingest, port
    collector.stop()


def test_http_requests_need_the_token(guarded):
    _, _, _, port = guarded
    base = f"http://127.0.0.1:{port}"
    for path in ("/", "/static/monitor.js", "/api/status", "/api/results?since=0", "/api/runs"):
        assert get(base + path)[0] == 401
        assert get(base + path, {"X-Xrais-Token": "wrong"})[0] == 401
        assert get(base + path, {"X-Xrais-Token": TOKEN})[0] == 200
        assert get(base + path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(base + path + ("&" if "?" in path else "?") + f"token={TOKEN}")[0] == 200
    status, body = get(base + "/api/status")
    assert "token" in body["error"] and TOKEN not in str(body)
    # The page opened with ?token= keeps it in a cookie for its script, style and API calls.
    with urllib.request.urlopen(f"{base}/?token={TOKEN}", timeout=5) as response:
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert get(base + "/api/status", {"Cookie": cookie.split(";")[0]})[0] == 200
    assert get(base + "/api/status", {"Cookie": "xrais_monitor_token=wrong"})[0] == 401


def test_requests_never_read_files(guarded, tmp_path):
    _, _, _, port = guarded
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    headers = {"X-Xrais-Token": TOKEN}
    for path in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/../../etc/passwd",
                 "//etc/passwd", f"/static/{secret}", f"/static/..%2F..%2F{secret.name}", "/static/", "/static/monitor",
                 "/collector.py", "/static/../collector.py", f"/api/image?run=x&image={secret}&frame=0",
                 f"/api/results/{secret}", "/api/image?run=x&image=/etc/passwd"):
        status, body = get(f"http://127.0.0.1:{port}{path}", headers)
        assert status == 404, (path, status)
        assert "root:" not in str(body) and "import" not in str(body)
    assert get(f"http://127.0.0.1:{port}/api/results?since=-1", headers)[0] == 400
    post = urllib.request.Request(f"http://127.0.0.1:{port}/api/results", data=b"x", headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError, match="405"):
        urllib.request.urlopen(post, timeout=5)


def test_zeromq_messages_need_the_token(guarded, tmp_path, models_env):
    collector, work, ingest, port = guarded
    # A feeder with the wrong token is refused by the collector and stops with a clear error.
    intruder = Feeder(folder=str(tmp_path), work=work, collector=ingest, token="wrong")
    with pytest.raises(MonitorError, match="refused this feeder: wrong or missing token"):
        intruder.run(threading.Event())

    # A worker without the token is refused by the feeder; stream frames without it are not taken.
    stream = f"tcp://127.0.0.1:{free_port()}"
    feeder = Feeder(stream=stream, work=work, collector=ingest, token=TOKEN)
    stopping = threading.Event()
    thread = threading.Thread(target=feeder.run, args=(stopping,), daemon=True)
    thread.start()
    try:
        with pytest.raises(MonitorError, match="refused this worker: wrong or missing token"):
            Worker(Predictor(device="cpu", quadrants=1), connect=work).run(threading.Event())
        context = zmq.Context()
        sender = context.socket(zmq.PUSH)
        sender.bind(stream)
        pixels = image(1)
        for token in (None, "wrong", TOKEN):
            sender.send_multipart([encode(image_header("r", 1, GEOMETRY, pixels.dtype), token), pixels])
        wait_for(lambda: feeder.counts["rejected"] == 2 and feeder.counts["received"] == 1, 10, "the stream checks")
        sender.close(linger=0)
        context.term()
    finally:
        stopping.set()
        thread.join(15)
    assert collector.reader.totals()["stored"] == 0  # no worker with the token: nothing analysed
