"""Loopback fakes of the video-generation APIs, speaking the endpoints the official SDKs
call, for the API generators' tests: Luma (``lumaai``), Runway (``runwayml``), Sora
(``openai``'s videos API) and Veo (``google-genai`` on Vertex AI), plus a small
S3-compatible store for the first-frame uploader.

One server on 127.0.0.1 serves all four under its own path prefix (``base_url(provider)``),
the finished videos under ``/files/``. It checks the key on every API request (never on
the video files), records every request, keeps jobs in memory, and misbehaves on cue:
``fault(provider, kind, *specs)`` queues what the next requests of that kind (submit,
poll, download; ``inline`` for Veo's video in the poll answer) get instead of their
answer: an HTTP status, ``(status, headers)``, ``"malformed"`` (200 with a body that is
not JSON), ``"echo-key"`` (a 400 refusal quoting the key) or ``"truncated"`` (half the
video, with the full Content-Length; Veo: half the video, inline). It is bounded (``max_requests``) and stops itself after
``lifetime_s``."""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.request import urlopen

import numpy as np

from vlm_bench.utils.synthetic import write_video

PROVIDERS = ("luma", "runway", "sora", "veo")
VIDEO_FRAMES, VIDEO_SIZE = 6, (32, 64)


def tiny_mp4(tmp_dir: Path) -> bytes:
    path = Path(tmp_dir) / "fake_api_video.mp4"
    if not path.exists():
        write_video(path, [np.full((*VIDEO_SIZE, 3), 40 * i, np.uint8) for i in range(VIDEO_FRAMES)], fps=6)
    return path.read_bytes()


@dataclass
class Job:
    id: str
    provider: str
    model: str
    created: float
    request: dict[str, Any]
    refusal: str | None = None  # the job fails with this reason
    done: bool = False
    polls: int = 0


@dataclass
class Seen:
    at: float
    method: str
    path: str
    provider: str | None
    kind: str | None
    auth: str | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) that stops itself after ``lifetime_s``."""

    def __init__(self, handler: type, lifetime_s: float):
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True
        self._stop_lock = threading.Lock()
        self._stopped = False

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeVideoAPIs(LoopbackServer):
    def __init__(self, video: bytes, *, key: str, work_s: float = 0.0, lifetime_s: float = 120.0,
                 max_requests: int = 20000):
        self.video = video
        self.key = key
        self.work_s = work_s  # a job finishes this long after its submission ...
        self.hold = threading.Event()  # ... and only once this is set (it is, unless a test clears it)
        self.hold.set()
        self.refusal: str | None = None  # jobs submitted now fail at poll time with this reason
        self.echo_key_in_refusal = False
        self.faults: dict[tuple[str, str], deque] = defaultdict(deque)
        self.jobs: dict[str, Job] = {}
        self.seen: list[Seen] = []
        self.max_requests = max_requests
        self._ids = itertools.count()
        self._lock = threading.Lock()
        super().__init__(self._handler(), lifetime_s)

    # ------------------------------------------------------------ control

    def base_url(self, provider: str) -> str:
        return {"luma": f"{self.root}/luma", "runway": f"{self.root}/runway", "sora": f"{self.root}/sora/v1",
                "veo": f"{self.root}/veo/"}[provider]

    def fault(self, provider: str, kind: str, *specs: Any) -> None:
        self.faults[(provider, kind)].extend(specs)

    def count(self, provider: str | None = None, kind: str | None = None) -> int:
        return sum(1 for s in self.seen if (provider is None or s.provider == provider) and (kind is None or s.kind == kind))

    def stop(self) -> None:
        self.hold.set()  # nothing waits on a job past the server's end
        super().stop()

    # ------------------------------------------------------------ jobs

    def _new_job(self, provider: str, model: str, request: dict[str, Any]) -> Job:
        with self._lock:
            n = next(self._ids)
        job_id = f"{provider}-job-{n}"
        if provider == "veo":
            job_id = f"projects/fake/locations/us-central1/publishers/google/models/{model}/operations/op-{n}"
        refusal = self.refusal
        if refusal and self.echo_key_in_refusal:
            refusal = f"{refusal} (request authorised with {self.key})"
        job = Job(job_id, provider, model, time.monotonic(), request, refusal)
        self.jobs[job_id] = job
        return job

    def _state(self, job: Job) -> str:
        """running, succeeded or failed, now."""
        job.polls += 1
        if job.refusal:
            return "failed"
        if self.hold.is_set() and time.monotonic() - job.created >= self.work_s:
            return "succeeded"
        return "running"

    def job_view(self, job: Job, state: str) -> dict[str, Any]:
        url = f"{self.root}/files/{job.provider}/{job.id.rsplit('/', 1)[-1]}.mp4"
        if job.provider == "luma":
            luma = {"running": "dreaming", "succeeded": "completed", "failed": "failed"}[state]
            return {"id": job.id, "state": luma, "model": job.model, "generation_type": "video",
                    "created_at": "2025-01-01T00:00:00Z", "failure_reason": job.refusal if state == "failed" else None,
                    "assets": {"video": url} if state == "succeeded" else None}
        if job.provider == "runway":
            view = {"id": job.id, "createdAt": "2025-01-01T00:00:00Z",
                    "status": {"running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED"}[state]}
            if state == "succeeded":
                view["output"] = [url]
            if state == "failed":
                view.update(failure=job.refusal, failureCode="SAFETY.INPUT.TEXT")
            return view
        if job.provider == "sora":
            return {"id": job.id, "object": "video", "created_at": 1735689600, "model": job.model,
                    "progress": 100 if state == "succeeded" else 10, "seconds": "4", "size": "1280x720",
                    "status": {"running": "in_progress", "succeeded": "completed", "failed": "failed"}[state],
                    "error": {"code": "moderation_blocked", "message": job.refusal} if state == "failed" else None}
        view: dict[str, Any] = {"name": job.id, "done": state != "running"}
        if state == "succeeded":
            video = self.video[: len(self.video) // 2] if self._take(job.provider, "inline") == "truncated" else self.video
            view["response"] = {"@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
                                "videos": [{"bytesBase64Encoded": base64.b64encode(video).decode(), "mimeType": "video/mp4"}]}
        if state == "failed":
            view["response"] = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [job.refusal]}
        return view

    def _take(self, provider: str, kind: str) -> Any:
        queue = self.faults.get((provider, kind))
        with self._lock:
            return queue.popleft() if queue else None

    # ------------------------------------------------------------ HTTP

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def _send(self, status: int, body: bytes, content_type: str = "application/json",
                      headers: dict[str, str] | None = None, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if length is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(data).encode(), headers=headers)

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                provider, kind = route(method, path)
                auth = self.headers.get("Authorization") or self.headers.get("x-goog-api-key")
                if path == "/_stats":  # for a server in its own process (the benchmark)
                    return self._json(200, {f"{p}/{k}": server.count(p, k) for p in PROVIDERS for k in ("submit", "poll", "download")})
                server.seen.append(Seen(time.monotonic(), method, path, provider, kind, auth))
                if len(server.seen) > server.max_requests:
                    return self._json(503, {"error": "fake server: request budget spent"})
                if provider is None:
                    return self._json(404, {"error": f"no route {method} {path}"})
                public = path.startswith("/files/")  # a video URL: signed, no key
                if not public and auth not in (f"Bearer {server.key}", server.key):
                    return self._json(401, {"error": {"message": "invalid key", "code": 401}})
                if public and auth:
                    return self._json(400, {"error": "a video URL got an Authorization header"})
                fault = server._take(provider, kind)
                if fault is not None and fault != "truncated":
                    status, headers = (fault, {}) if isinstance(fault, (int, str)) else fault
                    if status == "malformed":
                        return self._send(200, b'{"id": "half an answer', "application/json")
                    if status == "echo-key":  # a refusal that quotes the request's key back
                        return self._json(400, error_body(provider, 400, f"prompt refused; request authorised with {server.key}"))
                    return self._json(status, error_body(provider, status, "fake failure"), headers)
                try:
                    handler = getattr(self, f"_{provider}_{kind}")
                    handler(path, raw, fault)
                except BrokenPipeError:
                    pass

            # ---------------------------------------------- submissions

            def _submit(self, provider: str, model: str, request: dict[str, Any]) -> Job:
                return server._new_job(provider, model, request)

            def _luma_submit(self, path, raw, fault):
                body = json.loads(raw)
                frame = (body.get("keyframes") or {}).get("frame0") or {}
                if not frame.get("url"):
                    return self._json(400, {"detail": "keyframes.frame0.url is required"})
                with urlopen(frame["url"], timeout=5) as fetched:  # Luma fetches the first frame itself
                    body["frame0_bytes"] = len(fetched.read())
                job = self._submit("luma", body["model"], body)
                self._json(201, server.job_view(job, "running"))

            def _runway_submit(self, path, raw, fault):
                body = json.loads(raw)
                if not str(body.get("promptImage", "")).startswith("data:image/"):
                    return self._json(400, {"error": "promptImage must be an https URL or a data URI"})
                job = self._submit("runway", body["model"], body)
                self._json(200, {"id": job.id})

            def _sora_submit(self, path, raw, fault):
                ctype = self.headers.get("Content-Type", "")
                if "multipart/form-data" not in ctype or b'name="input_reference"' not in raw:
                    return self._json(400, error_body("sora", 400, "input_reference must be a file upload"))
                fields = dict(re.findall(rb'name="(\w+)"\r\n\r\n([^\r]*)\r\n', raw))
                request = {k.decode(): v.decode() for k, v in fields.items()}
                job = self._submit("sora", request.get("model", "sora-2"), request)
                self._json(200, server.job_view(job, "running"))

            def _veo_submit(self, path, raw, fault):
                body = json.loads(raw)
                model = path.split("/models/")[1].split(":")[0]
                instance = body["instances"][0]
                if "bytesBase64Encoded" not in (instance.get("image") or {}):
                    return self._json(400, error_body("veo", 400, "image.bytesBase64Encoded is required"))
                job = self._submit("veo", model, body)
                self._json(200, {"name": job.id})

            # ---------------------------------------------- polls

            def _poll(self, provider: str, job_id: str) -> None:
                job = server.jobs.get(job_id)
                if job is None or job.provider != provider:
                    return self._json(404, error_body(provider, 404, f"no job {job_id}"))
                self._json(200, server.job_view(job, server._state(job)))

            def _luma_poll(self, path, raw, fault):
                self._poll("luma", path.rsplit("/", 1)[1])

            def _runway_poll(self, path, raw, fault):
                self._poll("runway", path.rsplit("/", 1)[1])

            def _sora_poll(self, path, raw, fault):
                self._poll("sora", path.rsplit("/", 1)[1])

            def _veo_poll(self, path, raw, fault):
                self._poll("veo", json.loads(raw)["operationName"])

            # ---------------------------------------------- videos

            def _video(self, fault) -> None:
                if fault == "truncated":
                    return self._send(200, server.video[: len(server.video) // 2], "video/mp4", length=len(server.video))
                self._send(200, server.video, "video/mp4")

            def _luma_download(self, path, raw, fault):
                self._video(fault)

            _runway_download = _luma_download

            def _sora_download(self, path, raw, fault):
                job = server.jobs.get(path.split("/")[-2])
                if job is None or server._state(job) != "succeeded":
                    return self._json(404, error_body("sora", 404, "video not ready"))
                self._video(fault)

        return Handler


def route(method: str, path: str) -> tuple[str | None, str | None]:
    """(provider, kind) of a request path."""
    if path.startswith("/files/"):
        return path.split("/")[2], "download"
    if method == "POST" and path == "/luma/generations/video":
        return "luma", "submit"
    if method == "GET" and re.fullmatch(r"/luma/generations/[^/]+", path):
        return "luma", "poll"
    if method == "POST" and path == "/runway/v1/image_to_video":
        return "runway", "submit"
    if method == "GET" and re.fullmatch(r"/runway/v1/tasks/[^/]+", path):
        return "runway", "poll"
    if method == "POST" and path == "/sora/v1/videos":
        return "sora", "submit"
    if method == "GET" and re.fullmatch(r"/sora/v1/videos/[^/]+", path):
        return "sora", "poll"
    if method == "GET" and re.fullmatch(r"/sora/v1/videos/[^/]+/content", path):
        return "sora", "download"
    if method == "POST" and path.startswith("/veo/") and path.endswith(":predictLongRunning"):
        return "veo", "submit"
    if method == "POST" and path.startswith("/veo/") and path.endswith(":fetchPredictOperation"):
        return "veo", "poll"
    return None, None


def error_body(provider: str, status: int, message: str) -> dict[str, Any]:
    """An error in the shape each provider answers with."""
    if provider == "luma":
        return {"detail": message}
    if provider == "runway":
        return {"error": message}
    if provider == "sora":
        return {"error": {"message": message, "type": "invalid_request_error", "code": None, "param": None}}
    return {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT" if status < 500 else "UNAVAILABLE"}}


# ---------------------------------------------------------------- S3


class FakeS3(LoopbackServer):
    """Enough of S3 for boto3's put_object and a presigned GET, path-style, on 127.0.0.1."""

    def __init__(self, lifetime_s: float = 120.0):
        self.objects: dict[str, bytes] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: bytes = b"", content_type: str = "application/xml") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                if self.headers.get("x-amz-content-sha256") == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD":
                    data = _decode_aws_chunks(data)
                store.seen.append(("PUT", self.path, self.headers.get("Authorization")))
                if not str(self.headers.get("Authorization", "")).startswith("AWS4-HMAC-SHA256"):
                    return self._reply(403, b"<Error><Code>AccessDenied</Code></Error>")
                store.objects[urlsplit(self.path).path] = data
                self.send_response(200)
                self.send_header("ETag", '"fake"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                parts = urlsplit(self.path)
                store.seen.append(("GET", self.path, self.headers.get("Authorization")))
                if "X-Amz-Signature" not in parse_qs(parts.query):
                    return self._reply(403, b"<Error><Code>AccessDenied</Code></Error>")
                data = store.objects.get(parts.path)
                if data is None:
                    return self._reply(404, b"<Error><Code>NoSuchKey</Code></Error>")
                self._reply(200, data, "image/png")

        super().__init__(Handler, lifetime_s)

    @property
    def url(self) -> str:
        return self.root


def _decode_aws_chunks(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        header, _, rest = rest.partition(b"\r\n")
        size = int(header.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


if __name__ == "__main__":  # python fake_video_apis.py VIDEO KEY WORK_S LIFETIME_S: serve until the lifetime ends
    import sys

    video, key, work_s, lifetime_s = sys.argv[1:5]
    with FakeVideoAPIs(Path(video).read_bytes(), key=key, work_s=float(work_s), lifetime_s=float(lifetime_s)) as fake:
        print(fake.root, flush=True)
        fake.thread.join()
