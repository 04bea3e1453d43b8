#!/usr/bin/env python3
"""A small OpenAI-compatible upstream for scripts/litellm-test.sh: the server the LiteLLM proxy's
`upstream` deployment (and its `files_settings`) forwards to, on loopback, standard library only.

    python3 scripts/litellm-upstream.py [PORT]    PORT 0 or none: a free one. Prints
                                                  `PORT=<n>` on stdout once it listens.

What it serves (shapes from `openai/openai-openapi`, openapi.yaml; the schema named on each):

- `POST /v1/chat/completions`, JSON or streamed (`CreateChatCompletionResponse`,
  `CreateChatCompletionStreamResponse`): the answer is `upstream: <last user message>`, with
  `finish_reason: "stop"` and `usage`. A last user message holding `[429-once]` is answered
  `429` with `Retry-After: 3` and `x-ratelimit-reset-requests: 3s` the first time that exact
  message is seen, and normally after: the relayed-hint case (LiteLLM re-sends an upstream's
  headers as `llm_provider-<name>`).
- `POST /v1/responses`, JSON or streamed (`CreateResponse` in; `Response`, and the
  `ResponseStreamEvent`s `response.created`, `response.in_progress`, `response.output_item.added`,
  `response.content_part.added`, `response.output_text.delta`, `response.output_text.done`,
  `response.content_part.done`, `response.output_item.done`, `response.completed`, each with
  `sequence_number` and an `event:` line naming it, as OpenAI streams them): the answer is
  `upstream: <last user input>` through the chat logic above, with `usage` in `ResponseUsage`'s
  shape (`input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens`). The
  LiteLLM proxy forwards an `openai/` deployment's `/v1/responses` here natively.
- The Files API: `POST /v1/files` (multipart/form-data, `purpose` and `file`), `GET /v1/files`
  (`purpose`, `order`, `limit`, `after`), `GET /v1/files/{id}`, `GET /v1/files/{id}/content`,
  `DELETE /v1/files/{id}` (`OpenAIFile`, `ListFilesResponse`, `DeleteFileResponse`).
- The Batch API: `POST /v1/batches`, `GET /v1/batches` (`limit`, `after`, newest first),
  `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel` (`Batch`, `ListBatchesResponse`). A
  batch is created `validating`; the first retrieve completes it at once: every input line
  (`BatchRequestInput`) is answered through the chat logic above and written to an output file
  (`BatchRequestOutput`, purpose `batch_output`); a line that is not a chat request goes to an
  error file. A batch whose input holds `[hold]` stays `in_progress` instead (the cancel case); a
  cancel makes a batch that has not finished `cancelling`, then `cancelled` on the next retrieve.

- `GET /v1/qwen-ci/requests` (this server's own, not OpenAI's): how many requests it answered
  per method and path (`{"POST /v1/responses": 3, ...}`), so that a test can tell where the proxy
  sent a request (natively to `/v1/responses`, or translated to `/v1/chat/completions`).

Everything lives in memory; nothing is checked about the key (the proxy's `api_key` is sent as a
Bearer and ignored). Errors are OpenAI's envelope, `{"error": {"message", "type", "param",
"code"}}`.
"""

import email.parser
import email.policy
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.RLock()  # re-entered: log_request counts while a GET holds it
FILES = {}  # id -> {"object": <OpenAIFile>, "content": bytes}
BATCHES = {}  # id -> <Batch>
REQUESTS = {}  # "METHOD /path" -> how many were answered
SEEN_429 = set()  # the `[429-once]` messages already answered 429
RETRY_AFTER_SECONDS = 3


def new_id(prefix):
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def chat_answer(body):
    """`(status, headers, payload)` for a chat request `body` (a dict): the one chat logic, used by
    `/v1/chat/completions` and by every batch line."""
    messages = body.get("messages") or []
    prompt = ""
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            prompt = c if isinstance(c, str) else json.dumps(c)
    if "[429-once]" in prompt:
        with LOCK:
            first = prompt not in SEEN_429
            SEEN_429.add(prompt)
        if first:
            headers = {
                "Retry-After": str(RETRY_AFTER_SECONDS),
                "x-ratelimit-limit-requests": "1",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{RETRY_AFTER_SECONDS}s",
            }
            return 429, headers, error_body(
                "Rate limit reached for requests (the upstream's 429-once marker).",
                "requests", code="rate_limit_exceeded")
    text = f"upstream: {prompt}"
    prompt_tokens = max(1, len(prompt.split()))
    completion_tokens = len(text.split())
    # CreateChatCompletionResponse: id, object "chat.completion", created, model, choices[]
    # (index, message {role, content, refusal}, finish_reason, logprobs), usage.
    return 200, {"x-request-id": new_id("req_")}, {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "upstream"),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(message, type_, param=None, code=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def file_object(file_id, filename, purpose, size):
    # OpenAIFile: required id, object "file", bytes, created_at, filename, purpose, status.
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }


def store_file(filename, purpose, content):
    file_id = new_id("file-")
    obj = file_object(file_id, filename, purpose, len(content))
    with LOCK:
        FILES[file_id] = {"object": obj, "content": content}
    return obj


def run_batch(batch):
    """Answers every input line now and completes `batch` (called with LOCK held)."""
    now = int(time.time())
    entry = FILES.get(batch["input_file_id"])
    outputs, errors = [], []
    lines = entry["content"].decode("utf-8", "replace").splitlines() if entry else []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError:
            errors.append({"id": new_id("batch_req_"), "custom_id": None, "response": None,
                           "error": {"code": "invalid_json", "message": f"line {number} is not JSON"}})
            continue
        custom_id = request.get("custom_id")
        if request.get("url") != batch["endpoint"] or not isinstance(request.get("body"), dict):
            errors.append({"id": new_id("batch_req_"), "custom_id": custom_id, "response": None,
                           "error": {"code": "invalid_request",
                                     "message": f"line {number} is not a {batch['endpoint']} request"}})
            continue
        # The chat logic without its 429-once (a batch line is never rate limited here).
        body = dict(request["body"])
        status, headers, payload = chat_answer_no_limit(body)
        # BatchRequestOutput: id, custom_id, response {status_code, request_id, body}, error.
        out = {"id": new_id("batch_req_"), "custom_id": custom_id,
               "response": {"status_code": status, "request_id": headers.get("x-request-id", ""),
                            "body": payload},
               "error": None}
        (outputs if status == 200 else errors).append(out)
    for field, rows, name in (("output_file_id", outputs, "output"), ("error_file_id", errors, "error")):
        if rows:
            content = "".join(json.dumps(r) + "\n" for r in rows).encode()
            file_id = new_id("file-")
            FILES[file_id] = {"object": file_object(file_id, f"batch_{batch['id']}_{name}.jsonl",
                                                    "batch_output", len(content)),
                              "content": content}
            batch[field] = file_id
    batch.update(status="completed", in_progress_at=now, finalizing_at=now, completed_at=now,
                 request_counts={"total": len(outputs) + len(errors), "completed": len(outputs),
                                 "failed": len(errors)})


def held(batch):
    """Whether `batch`'s input holds the `[hold]` marker: it then never completes on its own."""
    entry = FILES.get(batch["input_file_id"])
    return entry is not None and b"[hold]" in entry["content"]


def chat_answer_no_limit(body):
    messages = [dict(m) if isinstance(m, dict) else m for m in body.get("messages") or []]
    for m in messages:
        if isinstance(m, dict) and isinstance(m.get("content"), str):
            m["content"] = m["content"].replace("[429-once]", "")
    return chat_answer({**body, "messages": messages})


def responses_answer(body):
    """`(status, headers, Response)` for a Responses request `body` (`CreateResponse`): the last user
    item of `input` (a string, or messages whose `content` is a string or `input_text` parts) goes
    through the chat logic, and its answer becomes one `message` output item."""
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    messages = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        messages.append({"role": item.get("role", "user"), "content": content})
    status, headers, chat = chat_answer({"model": body.get("model"), "messages": messages})
    if status != 200:
        return status, headers, chat
    text = chat["choices"][0]["message"]["content"]
    usage = chat["usage"]
    # Response: id, object "response", created_at, status, error, incomplete_details,
    # instructions, max_output_tokens, model, output[], usage (ResponseUsage), store, ...
    return 200, headers, {
        "id": new_id("resp_"), "object": "response", "created_at": chat["created"],
        "status": "completed", "completed_at": int(time.time()), "error": None,
        "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": chat["model"],
        "output": [{"id": new_id("msg_"), "type": "message", "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": body.get("store", True),
        "temperature": body.get("temperature", 1), "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_p": body.get("top_p", 1),
        "truncation": "disabled",
        "usage": {"input_tokens": usage["prompt_tokens"],
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": usage["completion_tokens"],
                  "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": usage["total_tokens"]},
        "user": None, "metadata": {},
    }


def response_events(response):
    """The `ResponseStreamEvent`s that stream `response` (openapi.yaml: `ResponseCreatedEvent`,
    `ResponseInProgressEvent`, `ResponseOutputItemAddedEvent`, `ResponseContentPartAddedEvent`,
    `ResponseTextDeltaEvent`, `ResponseTextDoneEvent`, `ResponseContentPartDoneEvent`,
    `ResponseOutputItemDoneEvent`, `ResponseCompletedEvent`), without `sequence_number` yet."""
    item = response["output"][0]
    text = item["content"][0]["text"]
    pending = {**response, "status": "in_progress", "completed_at": None, "output": [],
               "usage": None}
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    empty_part = {"type": "output_text", "text": "", "annotations": []}
    return [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **where, "part": empty_part},
        *({"type": "response.output_text.delta", **where, "delta": text[i:i + 16], "logprobs": []}
          for i in range(0, len(text), 16)),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": item["content"][0]},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response},
    ]


def chat_frames(body, payload):
    """A chat answer streamed: `CreateChatCompletionStreamResponse` chunks (object
    "chat.completion.chunk"), the usage chunk (empty choices) when `stream_options.include_usage`,
    then `data: [DONE]`."""
    text = payload["choices"][0]["message"]["content"]
    base = {"id": payload["id"], "object": "chat.completion.chunk",
            "created": payload["created"], "model": payload["model"]}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                              "finish_reason": None}]},
        *({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
          for piece in (text[i:i + 16] for i in range(0, len(text), 16))),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": payload["usage"]})
    return [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]


def response_frames(_body, response):
    """A Responses answer streamed: each event with its `sequence_number` and an `event:` line
    naming its type, as OpenAI streams them; no `[DONE]` (the stream ends after
    `response.completed`)."""
    frames = []
    for number, event in enumerate(response_events(response)):
        event = {"type": event["type"], "sequence_number": number,
                 **{k: v for k, v in event.items() if k != "type"}}
        frames.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
    return frames


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qwen-ci-upstream/1"

    def log_request(self, code="-", size="-"):
        with LOCK:
            key = f"{self.command} {urlsplit(self.path).path}"
            REQUESTS[key] = REQUESTS.get(key, 0) + 1
        super().log_request(code, size)

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: %s %s\n" % (self.address_string(), fmt % args))

    # --- plumbing ------------------------------------------------------------------------------
    def send_json(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def not_found(self, what):
        self.send_json(404, error_body(f"No such {what}", "invalid_request_error", code="not_found"))

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def route(self):
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        if path.startswith("/v1/"):
            path = path[3:]
        return [p for p in path.split("/") if p], {k: v[-1] for k, v in parse_qs(parts.query).items()}

    # --- methods -------------------------------------------------------------------------------
    def do_GET(self):
        seg, query = self.route()
        with LOCK:
            if seg == ["qwen-ci", "requests"]:
                return self.send_json(200, dict(REQUESTS))
            if seg == ["models"]:
                return self.send_json(200, {"object": "list", "data": [
                    {"id": "upstream", "object": "model", "created": 0, "owned_by": "qwen-ci"}]})
            if seg == ["files"]:
                return self.send_json(200, self.list_files(query))
            if len(seg) == 2 and seg[0] == "files":
                f = FILES.get(seg[1])
                return self.send_json(200, f["object"]) if f else self.not_found("File object")
            if len(seg) == 3 and seg[0] == "files" and seg[2] == "content":
                f = FILES.get(seg[1])
                if not f:
                    return self.not_found("File object")
                data = f["content"]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            if seg == ["batches"]:
                return self.send_json(200, self.list_batches(query))
            if len(seg) == 2 and seg[0] == "batches":
                batch = BATCHES.get(seg[1])
                if not batch:
                    return self.not_found("Batch")
                if batch["status"] == "validating" and held(batch):
                    batch.update(status="in_progress", in_progress_at=int(time.time()))
                elif batch["status"] in ("validating", "in_progress") and not held(batch):
                    run_batch(batch)
                elif batch["status"] == "cancelling":
                    batch.update(status="cancelled", cancelled_at=int(time.time()))
                return self.send_json(200, batch)
        return self.not_found("route")

    def do_DELETE(self):
        seg, _ = self.route()
        if len(seg) == 2 and seg[0] == "files":
            with LOCK:
                if FILES.pop(seg[1], None) is None:
                    return self.not_found("File object")
            # DeleteFileResponse: id, object "file", deleted.
            return self.send_json(200, {"id": seg[1], "object": "file", "deleted": True})
        return self.not_found("route")

    def do_POST(self):
        seg, _ = self.route()
        raw = self.body()
        if seg == ["chat", "completions"]:
            return self.chat(raw)
        if seg == ["responses"]:
            return self.create_response(raw)
        if seg == ["files"]:
            return self.upload(raw)
        if seg == ["batches"]:
            return self.create_batch(raw)
        if len(seg) == 3 and seg[0] == "batches" and seg[2] == "cancel":
            with LOCK:
                batch = BATCHES.get(seg[1])
                if not batch:
                    return self.not_found("Batch")
                if batch["status"] in ("validating", "in_progress", "finalizing"):
                    batch.update(status="cancelling", cancelling_at=int(time.time()))
                return self.send_json(200, batch)
        return self.not_found("route")

    # --- endpoints -----------------------------------------------------------------------------
    def chat(self, raw):
        return self.answer(raw, chat_answer, chat_frames)

    def create_response(self, raw):
        return self.answer(raw, responses_answer, response_frames)

    def answer(self, raw, logic, frames):
        """A JSON request through `logic` (body -> status, headers, payload): the payload as JSON,
        or, for `stream: true`, streamed as `frames(body, payload)`."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.send_json(400, error_body("The body is not JSON.", "invalid_request_error"))
        status, headers, payload = logic(body)
        if status != 200 or not body.get("stream"):
            return self.send_json(status, payload, headers)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        for frame in frames(body, payload):
            self.wfile.write(frame.encode())
        self.wfile.flush()
        self.close_connection = True
        return None

    def upload(self, raw):
        # CreateFileRequest: multipart/form-data with `file` and `purpose`.
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return self.send_json(400, error_body("Expected multipart/form-data.", "invalid_request_error"))
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
        fields, filename, content = {}, None, None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                filename = part.get_filename() or "upload.jsonl"
                content = part.get_payload(decode=True) or b""
            elif name:
                fields[name] = (part.get_payload(decode=True) or b"").decode()
        if content is None or not fields.get("purpose"):
            return self.send_json(400, error_body("`file` and `purpose` are required.",
                                                  "invalid_request_error"))
        return self.send_json(200, store_file(filename, fields["purpose"], content))

    def list_files(self, query):
        # ListFilesResponse: object "list", data, first_id, last_id, has_more.
        items = [f["object"] for f in FILES.values()
                 if not query.get("purpose") or f["object"]["purpose"] == query["purpose"]]
        if query.get("order", "desc") == "desc":
            items.reverse()
        return page(items, query, default_limit=10000)

    def create_batch(self, raw):
        # CreateBatchRequest: input_file_id, endpoint, completion_window, metadata.
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.send_json(400, error_body("The body is not JSON.", "invalid_request_error"))
        with LOCK:
            if body.get("input_file_id") not in FILES:
                return self.send_json(400, error_body("No such File object: input_file_id",
                                                      "invalid_request_error", "input_file_id"))
            now = int(time.time())
            batch = {
                "id": new_id("batch_"), "object": "batch",
                "endpoint": body.get("endpoint", "/v1/chat/completions"),
                "errors": None,
                "input_file_id": body["input_file_id"],
                "completion_window": body.get("completion_window", "24h"),
                "status": "validating", "output_file_id": None, "error_file_id": None,
                "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
                "finalizing_at": None, "completed_at": None, "failed_at": None,
                "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "metadata": body.get("metadata") or None,
            }
            BATCHES[batch["id"]] = batch
            return self.send_json(200, batch)

    def list_batches(self, query):
        # ListBatchesResponse: object "list", data (newest first), first_id, last_id, has_more.
        return page(list(reversed(list(BATCHES.values()))), query, default_limit=20)


def page(items, query, default_limit):
    after = query.get("after")
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    try:
        limit = max(1, int(query.get("limit", default_limit)))
    except ValueError:
        limit = default_limit
    data = items[:limit]
    return {"object": "list", "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(items) > limit}


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"PORT={server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
