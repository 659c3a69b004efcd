"""The engines' HTTP APIs with canned answers: health, models, info and (streaming) chat.

Shapes follow the field fixtures under tests/fixtures/field/engine-ready/:
vLLM's /v1/models and SSE stream, SGLang's /get_server_info and
/get_model_info, uvicorn's access and ready lines.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from .engines import Settings, version_tuple
from .logs import say, stamp

# The canned reply: (kind, text) pieces, one streamed chunk each. With a
# reasoning parser the "think" pieces go to reasoning_content, tags dropped.
PIECES = [("tag", "<think>"), ("think", "\n"), ("think", "Stand"), ("think", "-in"),
          ("think", " engine"), ("think", ":"), ("think", " no"), ("think", " model"),
          ("think", " runs"), ("think", " here"), ("think", "."), ("think", "\n"),
          ("tag", "</think>"), ("tag", "\n\n"), ("answer", "Hello"), ("answer", " from"),
          ("answer", " the"), ("answer", " llmfab"), ("answer", " stand"), ("answer", "-in"),
          ("answer", ".")]


class Api:
    """Routes and bodies of one engine's server; ``settings`` say which engine."""

    def __init__(self, settings: Settings, model_config: dict[str, Any]):
        self.s = settings
        self.model_config = model_config
        self.created = int(time.time())
        self.max_model_len = (settings.max_model_len
                              or int(model_config.get("max_position_embeddings") or 163840))
        self.token_delay = float(os.environ.get("STANDIN_TOKEN_DELAY", "0.02"))
        self.routes = self._routes()

    def _routes(self) -> dict[tuple[str, str], Callable[[dict[str, Any]], Any]]:
        empty = lambda _body: (200, b"")  # noqa: E731
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("GET", "/health"): empty,
            ("GET", "/v1/models"): lambda _b: (200, self.models()),
            ("POST", "/v1/chat/completions"): lambda b: self.completion(b, chat=True),
            ("POST", "/v1/completions"): lambda b: self.completion(b, chat=False),
        }
        if self.s.engine in ("vllm", "trtllm"):
            routes[("GET", "/version")] = lambda _b: (200, {"version": self.s.version})
        if self.s.engine == "vllm":
            routes[("GET", "/metrics")] = lambda _b: (200, self.metrics())
        if self.s.engine == "sglang":
            routes[("GET", "/health_generate")] = empty
            new = version_tuple(self.s.version) >= (0, 5)
            for name, body in (("server_info", self.server_info), ("model_info", self.model_info)):
                routes[("GET", f"/get_{name}")] = self._deprecated(name, body) if new else (
                    lambda _b, body=body: (200, body()))
                if new:
                    routes[("GET", f"/{name}")] = lambda _b, body=body: (200, body())
        return routes

    def _deprecated(self, name: str, body: Callable[[], Any]) -> Callable[[dict[str, Any]], Any]:
        def route(_body: dict[str, Any]) -> Any:
            say(f"{stamp()} Endpoint '/get_{name}' is deprecated and will be removed in a "
                f"future version. Please use '/{name}' instead.")
            return 200, body()
        return route

    def needs_key(self, path: str) -> bool:
        """vLLM guards /v1/* only; SGLang everything but /health*; TensorRT-LLM nothing."""
        if not self.s.api_key:
            return False
        if self.s.engine == "vllm":
            return path.startswith("/v1")
        return self.s.engine == "sglang" and not path.startswith("/health")

    def models(self) -> dict[str, Any]:
        owner = {"trtllm": "tensorrt_llm"}.get(self.s.engine, self.s.engine)
        card: dict[str, Any] = {"id": self.s.served_name, "object": "model",
                                "created": int(time.time()), "owned_by": owner}
        if self.s.engine == "vllm":
            card.update(root=self.s.model, parent=None, max_model_len=self.max_model_len,
                        permission=[{"id": f"modelperm-{uuid.uuid4().hex[:16]}",
                                     "object": "model_permission", "created": card["created"],
                                     "allow_create_engine": False, "allow_sampling": True,
                                     "allow_logprobs": True, "allow_search_indices": False,
                                     "allow_view": True, "allow_fine_tuning": False,
                                     "organization": "*", "group": None, "is_blocking": False}])
        elif self.s.engine == "sglang":
            card.update(root=self.s.served_name, max_model_len=self.max_model_len)
        return {"object": "list", "data": [card]}

    def server_info(self) -> dict[str, Any]:
        args = {key: value for key, value in self.s.options.items() if key != "unparsed"}
        dist = ":".join(map(str, self.s.dist_addr)) if self.s.dist_addr else None
        args.update(model_path=self.s.model, tokenizer_path=self.s.model, host=self.s.host,
                    port=self.s.port, tp_size=self.s.world_size, nnodes=self.s.nnodes,
                    node_rank=self.s.node_rank, served_model_name=self.s.served_name,
                    api_key=self.s.api_key, context_length=self.s.max_model_len,
                    dist_init_addr=dist)
        info = {**args, "max_total_num_tokens": 65536, "max_req_input_len": self.max_model_len - 6}
        if version_tuple(self.s.version) >= (0, 5):
            info.update(status="ready", internal_states=[{"model_path": self.s.model,
                                                          "last_gen_throughput": 0.0}])
        info["version"] = self.s.version
        return info

    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"model_path": self.s.model, "tokenizer_path": self.s.model,
                                "is_generation": True}
        if version_tuple(self.s.version) >= (0, 5):
            info.update(preferred_sampling_params=None, weight_version="default",
                        has_image_understanding=False, has_audio_understanding=False,
                        model_type=self.model_config.get("model_type"),
                        architectures=self.model_config.get("architectures"))
        return info

    def metrics(self) -> bytes:
        name = self.s.served_name
        return (f"# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
                f"# TYPE vllm:num_requests_running gauge\n"
                f'vllm:num_requests_running{{model_name="{name}"}} 0.0\n').encode()

    def completion(self, body: dict[str, Any], chat: bool) -> Any:
        """A chat or text completion; a generator of SSE events when streaming."""
        if self.s.engine == "vllm" and body.get("model") not in (None, self.s.served_name):
            return 404, {"object": "error", "type": "NotFoundError", "param": None, "code": 404,
                         "message": f"The model `{body.get('model')}` does not exist."}
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        pieces = PIECES[: int(limit)] if limit else PIECES
        finish = "length" if limit and int(limit) < len(PIECES) else "stop"
        prompt = body.get("messages") if chat else body.get("prompt")
        usage = {"prompt_tokens": len(json.dumps(prompt or "").split()),
                 "completion_tokens": len(pieces)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return 200, self._stream(ident, chat, pieces, finish, usage if include_usage else None)
        think, answer = self._texts(pieces)
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": answer, "tool_calls": []}
            if self.s.reasoning:
                message["reasoning_content"] = think
            else:
                message["content"] = think + answer
            choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None,
                                      "finish_reason": finish, "stop_reason": None}
        else:
            choice = {"index": 0, "text": think + answer, "logprobs": None,
                      "finish_reason": finish, "stop_reason": None}
        return 200, {"id": ident, "object": "chat.completion" if chat else "text_completion",
                     "created": int(time.time()), "model": self.s.served_name,
                     "choices": [choice], "usage": usage}

    def _texts(self, pieces: list[tuple[str, str]]) -> tuple[str, str]:
        """(reasoning text, answer text); with no parser the tags stay in the reasoning part."""
        if self.s.reasoning:
            think = "".join(t for k, t in pieces if k == "think").strip("\n")
            return think, "".join(t for k, t in pieces if k == "answer")
        return "".join(t for k, t in pieces if k != "answer"), "".join(
            t for k, t in pieces if k == "answer")

    def _stream(self, ident: str, chat: bool, pieces: list[tuple[str, str]], finish: str,
                usage: dict[str, int] | None) -> Iterator[bytes]:
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choice: dict[str, Any] | None, **extra: Any) -> bytes:
            chunk = {"id": ident, "object": obj, "created": created, "model": self.s.served_name,
                     "choices": [choice] if choice else [], **extra}
            return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

        if chat:
            yield event({"index": 0, "delta": {"role": "assistant", "content": ""},
                         "logprobs": None, "finish_reason": None})
        for kind, text in pieces:
            time.sleep(self.token_delay)
            if self.s.reasoning and kind == "tag":
                continue
            key = "reasoning_content" if self.s.reasoning and kind == "think" else "content"
            yield event({"index": 0, "delta": {key: text}, "logprobs": None, "finish_reason": None}
                        if chat else {"index": 0, "text": text, "logprobs": None,
                                      "finish_reason": None})
        yield event({"index": 0, "delta": {"content": ""}, "logprobs": None,
                     "finish_reason": finish, "stop_reason": None} if chat else
                    {"index": 0, "text": "", "logprobs": None, "finish_reason": finish,
                     "stop_reason": None})
        if usage:
            yield event(None, usage=usage)
        yield b"data: [DONE]\n\n"


class Handler(BaseHTTPRequestHandler):
    """Dispatch to the server's Api; uvicorn-style access log lines."""

    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        api: Api = self.server.api  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if api.needs_key(path) and self.headers.get("Authorization") != f"Bearer {api.s.api_key}":
            return self._send(401, {"error": "Unauthorized"})
        route = api.routes.get((method, path))
        if route is None:
            known = any(p == path for _m, p in api.routes)
            return self._send(405 if known else 404,
                              {"detail": "Method Not Allowed" if known else "Not Found"})
        try:
            body = json.loads(raw) if raw else {}
        except ValueError as error:
            return self._send(400, {"object": "error", "message": f"Invalid JSON: {error}",
                                    "type": "BadRequestError", "param": None, "code": 400})
        status, payload = route(body if isinstance(body, dict) else {})
        if isinstance(payload, Iterator):
            return self._stream(payload)
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        kind = "application/json" if not isinstance(payload, bytes) else "text/plain; charset=utf-8"
        if data or not isinstance(payload, bytes):
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for data in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        host, port = self.client_address[:2]
        phrase = HTTPStatus(int(code)).phrase if str(code).isdigit() else ""
        engine = self.server.api.s.engine  # type: ignore[attr-defined]
        prefix = f"{stamp()} " if engine == "sglang" else ""
        say(f'{prefix}INFO:     {host}:{port} - "{self.requestline}" {code} {phrase}')

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        print(format % args, file=sys.stderr, flush=True)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(api: Api, address: str) -> None:
    """Listen on ``address`` (the host's own for 0.0.0.0), print the ready lines, serve forever."""
    server = Server((address, api.s.port), Handler)
    server.api = api  # type: ignore[attr-defined]
    prefix = f"{stamp()} " if api.s.engine == "sglang" else ""
    shown = api.s.host
    for line in (f"Started server process [{os.getpid()}]", "Waiting for application startup.",
                 "Application startup complete.",
                 f"Uvicorn running on http://{shown}:{api.s.port} (Press CTRL+C to quit)"):
        say(f"{prefix}INFO:     {line}")
    if api.s.engine == "sglang":
        say(f"{stamp()} The server is fired up and ready to roll!")
    server.serve_forever()
