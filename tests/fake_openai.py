"""A scriptable OpenAI-compatible server on 127.0.0.1 for the openai backend's tests: it
records every request, counts requests in flight, fails on cue (429, 5xx, dropped
connections) and checks the key, answering deterministically from what it was sent."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAIServer:
    def __init__(self, models=("fake-model",), key: str | None = None, delay_s: float = 0.0, echo_key_on_401: bool = False,
                 owned_by: str = "fake", echo_padding: int = 0):
        self.models = list(models)
        self.owned_by = owned_by
        self.echo_padding = echo_padding  # characters before the echoed key
        self.key = key
        self.delay_s = delay_s
        self.echo_key_on_401 = echo_key_on_401
        self.failures: deque = deque()  # per chat request, in order: 429, 500, "drop", (429, {"Retry-After": "0"})
        # per item, by a word of its question, every time it is asked: "reset" (the connection
        # reset mid-body), "hang" (never answers), "html" / "notjson" (a 200 that is no chat
        # completion), or an int N (an answer of N characters)
        self.per_item: dict[str, Any] = {}
        self.models_hang = False  # GET /models accepts and never answers
        self.finish_reason = "stop"
        # vLLM's context: reported in GET /models, and a request past it is a 400 (counted
        # here as 256 tokens per image and a token per 4 bytes of text)
        self.max_model_len: int | None = None
        # a rate limit: past this many requests in flight, a 429 with this Retry-After
        self.capacity: int | None = None
        self.retry_after = "0.5"
        self.throttled = 0
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAIServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, body: dict[str, Any]) -> str:
        """A deterministic answer: how many images and the last words of the question."""
        content = body["messages"][-1]["content"]
        images = sum(1 for part in content if part["type"] == "image_url")
        text = " ".join(part["text"] for part in content if part["type"] == "text")
        return f"{images} images: {text.split()[-1]}"

    @staticmethod
    def prompt_tokens(body: dict[str, Any]) -> int:
        parts = [p for m in body["messages"] for p in (m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}])]
        images = sum(1 for p in parts if p["type"] == "image_url")
        return 256 * images + sum(len(p.get("text", "").encode()) for p in parts) // 4

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                sent = self.headers.get("Authorization", "")
                if server.key is None or sent == f"Bearer {server.key}":
                    return True
                message = "." * server.echo_padding + f"invalid key: {sent}" if server.echo_key_on_401 else "invalid key"
                self._send(401, {"error": {"message": message, "type": "auth"}})
                return False

            def _reset_mid_body(self) -> None:
                import socket
                import struct

                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "400")
                self.end_headers()
                self.wfile.write(b'{"id": "chatcmpl-1", "choices": [')
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()  # RST: "connection reset by peer" on the client

            def _raw(self, content_type: str, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if server.models_hang:
                    time.sleep(3600)
                if self.path.rstrip("/") != "/v1/models":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if self._authorized():
                    extra = {"max_model_len": server.max_model_len} if server.max_model_len else {}
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": server.owned_by, **extra}
                                                                for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if not self._authorized():
                    return
                with server._lock:
                    server.requests.append(body)
                    server.times.append(time.monotonic())
                    failure = server.failures.popleft() if server.failures else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    if server.capacity is not None and server.in_flight > server.capacity:
                        failure = (429, {"Retry-After": server.retry_after})  # answered at once, as a limiter does
                        server.throttled += 1
                text = " ".join(p.get("text", "") for p in body["messages"][-1]["content"] if isinstance(p, dict))
                scripted = next((v for k, v in server.per_item.items() if k in text), None)
                try:
                    if not (failure and failure[0] == 429 if isinstance(failure, tuple) else False):
                        time.sleep(server.delay_s)
                    if scripted == "reset":
                        return self._reset_mid_body()
                    if scripted == "hang":
                        time.sleep(3600)
                    if scripted == "html":
                        return self._raw("text/html", b"<html><body>502 Bad Gateway (a proxy page)</body></html>")
                    if scripted == "notjson":
                        return self._raw("application/json", b"upstream error: model not loaded")
                    if failure == "drop":
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if server.max_model_len and server.prompt_tokens(body) + body["max_tokens"] > server.max_model_len:
                        return self._send(400, {"error": {"message": "This model's maximum context length is "
                                                                     f"{server.max_model_len} tokens"}})
                    if failure is not None:
                        status, headers = failure if isinstance(failure, tuple) else (failure, {})
                        return self._send(status, {"error": {"message": f"scripted {status}"}}, headers)
                    text = server.answer(body) if not isinstance(scripted, int) else "x" * scripted
                    self._send(200, {
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": server.finish_reason}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": len(text.split()) + 1, "total_tokens": 0},
                    })
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler
