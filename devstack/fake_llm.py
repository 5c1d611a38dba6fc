"""An offline, deterministic OpenAI-compatible chat server (``/v1/chat/completions``, ``stream`` too).

Its answers are labelled as offline and derived from the conversation, so context across
turns and ``\\clear`` are visible without a model. Tests queue faults (status codes, delays,
empty answers) with ``fail_next``, and can make it behave like models that exist: one that
thinks aloud (``reasoning``: inline ``<think>`` or separate ``reasoning_content``), one with a
small context window (``context_limit``, refused as OpenAI does with
``context_length_exceeded``), one that cannot see pictures (``vision=False``). Token counts come
in ``usage`` as OpenAI sends them (streamed: a last chunk with no choices, only when asked with
``stream_options.include_usage``); ``usage=False`` is a provider that sends none, and
``refuse_stream_options`` one that rejects the parameter.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

from devstack.loopback import JsonHandler, LoopbackServer
from shared.reply.tools.base import NO_SUCH_TOOL, TOOL_FAILED

LABEL = "【离线模型】"
# A 1x1 PNG: what the offline model "draws".
PICTURE = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
                           "AABJRU5ErkJggg==")
THOUGHT = "用户在问问题，我先想一想怎么回答。"
CHUNK_CHARS = 8
MARKDOWN_SAMPLE = "下面是示例代码：\n\n```python\ndef hello():\n    print(\"你好\")\n```\n\n- 第一点\n- 第二点"


def is_clock_line(message: Dict[str, Any]) -> bool:
    return message.get("role") == "system" and str(message.get("content", "")).startswith("当前时间：")


def text_of(content: Any) -> str:
    """A message's text: the string, or the text parts of OpenAI content parts (none for a tool call)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def images_in(content: Any) -> List[str]:
    return [] if isinstance(content, str) else [part["image_url"]["url"] for part in content
                                                if part.get("type") == "image_url"]


URL = re.compile(r"(?:https?|file)://[^\s，。、）)>]+")


def tool_calls_for(messages: List[Dict[str, Any]], tools: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """What the offline model asks of the tools it is offered, like a real one would: every link in the
    question goes to ``read_url`` (several in one round), "搜索"/"search" goes to ``web_search``. Once the
    tools have answered (``tool`` messages after the question), it answers."""
    offered = {tool["function"]["name"] for tool in tools}
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    if any(m.get("role") == "tool" for m in messages[last_user + 1:]):
        return []
    question = text_of(messages[last_user].get("content", "")) if last_user >= 0 else ""
    calls = [("read_url", {"url": url}) for url in URL.findall(question) if "read_url" in offered]
    if "draw_image" in offered and any(w in question for w in ("画", "海报")):
        calls.append(("draw_image", {"prompt": question}))
    if not calls and "web_search" in offered and any(w in question.lower() for w in ("搜索", "search", "新闻")):
        calls.append(("web_search", {"query": question.replace("搜索", "").strip() or question}))
    return [{"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls)]


def offline_answer(messages: List[Dict[str, Any]]) -> str:
    """A reply that shows what the model received: the question, the turns, the persona, the pictures."""
    results = [str(m.get("content", "")) for m in messages if m.get("role") == "tool"]
    if results:
        # A real model words a tool's failure for the user; the reason itself is in the reply function's log.
        found = [r for r in results if not r.startswith((TOOL_FAILED, NO_SUCH_TOOL))]
        missing = len(results) - len(found)
        failed = f"有 {missing} 个工具没有拿到结果（原因见回复函数的日志）。" if missing else ""
        if not found:
            return f"{LABEL}{failed}离线模型没有别的资料可用。"
        return f"{LABEL}{failed}根据工具的结果：" + " | ".join(r[:300] for r in found)
    pictures = len(images_in(messages[-1].get("content", ""))) if messages else 0
    if pictures:
        return f"{LABEL}看到了 {pictures} 张图片。{text_of(messages[-1]['content'])[:200]}"
    questions = [text_of(m.get("content", "")) for m in messages if m.get("role") == "user"]
    question = questions[-1] if questions else ""
    knowledge = [m["content"] for m in messages if m.get("role") == "system" and "来源：" in m.get("content", "")]
    if knowledge:
        first = re.search(r"\[1\] 来源：(.+)\n(.+)", knowledge[0])
        return f"{LABEL}根据资料（{first.group(1)}）：{first.group(2)[:200]}" if first else LABEL
    earlier = questions[:-1]
    if any(word in question for word in ("刚才", "上一句", "previous", "before")):
        if earlier:
            return f"{LABEL}你上一句说的是：「{earlier[-1]}」。"
        return f"{LABEL}我们还没有聊过别的，这是第一句。"
    if any(word in question.lower() for word in ("代码", "code", "markdown")):
        return f"{LABEL}{MARKDOWN_SAMPLE}"
    if "长文" in question or "long" in question.lower():
        return LABEL + "\n\n".join(f"第 {i} 段：" + "这是一段用来演示长回答拆分的文字。" * 20 for i in range(1, 41))
    return f"{LABEL}收到：「{question}」。（上下文中有 {len(earlier)} 轮之前的提问）"


# An instruction planted in a page, a search result, a tool's output or a document, for a model that obeys
# (``FakeLLM.obey_injections``): "照做：<what to do>", where {对话} stands for the conversation so far.
INJECTION = re.compile(r"照做：(.+)")
CONVERSATION = "{对话}"


def conversation_so_far(messages: List[Dict[str, Any]]) -> str:
    """What an attacker wants: every user and assistant turn, and the persona, as one string."""
    return "；".join(text_of(m.get("content")) for m in messages if m.get("role") in ("user", "assistant", "system")
                    and not is_clock_line(m) and "来源：" not in text_of(m.get("content")))


def injected(messages: List[Dict[str, Any]]) -> List[str]:
    """The planted instructions, filled in with the conversation, in the order they were read."""
    from urllib.parse import quote

    data = quote(conversation_so_far(messages))
    planted = [text_of(m.get("content")) for m in messages if m.get("role") == "tool" or
               (m.get("role") == "system" and "来源：" in text_of(m.get("content")))]
    return [order.strip().replace(CONVERSATION, data) for text in planted for order in INJECTION.findall(text)]


def obeyed_calls(messages: List[Dict[str, Any]], tools: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A model that obeys: a planted "read_url <address>" is called (once), else it calls tools as usual."""
    offered = {tool["function"]["name"] for tool in tools}
    called = {json.loads(call["function"]["arguments"]).get("url") for m in messages if m.get("role") == "assistant"
              for call in m.get("tool_calls") or []}
    orders = [order.split(" ", 1)[1].strip() for order in injected(messages) if order.startswith("read_url ")]
    urls = [url for url in orders if url not in called and "read_url" in offered]
    if urls:
        return [{"id": f"call_obey_{i}", "type": "function", "function": {"name": "read_url",
                                                                           "arguments": json.dumps({"url": url})}}
                for i, url in enumerate(urls)]
    return tool_calls_for(messages, tools)


class FakeLLM(LoopbackServer):
    def __init__(self, port: int = 0, api_key: Optional[str] = None) -> None:
        super().__init__(_Handler, port)
        self.api_key = api_key
        # What the model was asked; ``requests`` leaves out the date-and-time system line every prompt carries,
        # so tests compare the conversation itself; ``raw_requests`` is exactly what arrived.
        self.requests: List[Dict[str, Any]] = []
        self.raw_requests: List[Dict[str, Any]] = []
        self.arrivals: List[float] = []  # when each chat request arrived (time.time())
        self.faults: Deque[Dict[str, Any]] = deque()
        self.lock = threading.Lock()
        self.stream_delay = 0.0  # seconds per 8-character chunk of writing, streamed or not
        self.answer: Optional[str] = None  # when set, every answer (the benchmarks' fixed length)
        self.reasoning: Optional[str] = None  # "inline" (<think>...</think>) or "separate" (reasoning_content)
        self.context_limit: Optional[int] = None  # estimated prompt tokens the model accepts
        self.vision = True
        self.usage = True
        self.refuse_stream_options = False
        self.dripped: List[str] = []  # per drip fault: "cut" (the client hung up) or "finished"
        self.embeddings_down = False
        self.refuse_tools = False  # a model without function calling: 400 naming tools
        self.image_format = "url"  # or "b64_json"
        self.drawn: List[Dict[str, Any]] = []
        # Replaces the offline model's choice of tool calls (tests: a model that never stops calling tools).
        self.always_call: Optional[Callable[[List[Dict[str, Any]], List[Dict[str, Any]]], List[Dict[str, Any]]]] = None
        # A model that follows instructions it finds in what it reads (INJECTION): the attack the bot must survive.
        self.obey_injections = False
        self.embedded = 0  # texts embedded so far
        self.embedding_arrivals: List[float] = []  # when each embeddings request arrived (time.time())
        self.first_chunk_at: List[float] = []  # when each streamed answer's first chunk was written (time.monotonic)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def fail_next(self, *faults: Dict[str, Any]) -> None:
        """Queue faults: ``{"status": 429, "retry_after": 30}``, ``{"delay": 2.0}``, ``{"empty": True}``,
        ``{"break_after": 3}`` (a stream cut off after three chunks), ``{"drip": 0.2}`` (a hostile server:
        SSE keep-alive comments, or spaces before a non-streamed answer, every 0.2 s for up to a minute;
        ``dripped`` tells whether the client hung up before the minute was over)."""
        with self.lock:
            self.faults.extend(faults)

    def next_fault(self) -> Dict[str, Any]:
        with self.lock:
            return self.faults.popleft() if self.faults else {}


class _Handler(JsonHandler):
    server: FakeLLM

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "offline", "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = self.read_body()
        if self.path.rstrip("/").endswith("/embeddings"):
            return self._embeddings(json.loads(body or b"{}"))
        if self.path.rstrip("/").endswith("/images/generations"):
            return self._image(json.loads(body or b"{}"))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        if self.server.api_key and self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            self.send_json(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
            return
        request = json.loads(body)
        with self.server.lock:
            self.server.arrivals.append(time.time())
            self.server.raw_requests.append(request)
            self.server.requests.append({**request, "messages": [m for m in request.get("messages", [])
                                                                  if not is_clock_line(m)]})
        fault = self.server.next_fault()
        if fault.get("delay"):
            time.sleep(fault["delay"])
        if fault.get("status"):
            headers = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") else None
            self.send_json(fault["status"], {"error": {"message": "injected fault", "type": "server_error"}}, headers)
            return
        messages = request.get("messages", [])
        refusal = self._refusal(messages) or self._unknown_argument(request)
        if refusal:
            self.send_json(400, {"error": refusal})
            return
        tools = request.get("tools") or []
        if tools and self.server.refuse_tools:
            self.send_json(400, {"error": {"message": "This model does not support tools (function calling).",
                                           "type": "invalid_request_error", "code": "invalid_value"}})
            return
        choose = self.server.always_call or (obeyed_calls if self.server.obey_injections else tool_calls_for)
        calls = choose(messages, tools) if tools else []
        if calls and request.get("stream"):
            return self._stream_tool_calls(request.get("model", "offline"), calls)
        answer = "" if fault.get("empty") else self.server.answer or offline_answer(messages)
        if self.server.obey_injections and answer:
            answer = "\n\n".join([answer] + [o for o in injected(messages) if not o.startswith("read_url ")])
        reasoning = THOUGHT if self.server.reasoning == "separate" else ""
        if self.server.reasoning == "inline":
            answer = f"<think>{THOUGHT}</think>\n\n{answer}"
        usage = token_usage(messages, answer) if self.server.usage else None
        if fault.get("drip"):
            return self._drip(bool(request.get("stream")), fault["drip"])
        if request.get("stream"):
            wanted = bool((request.get("stream_options") or {}).get("include_usage"))
            self._stream(request.get("model", "offline"), answer, reasoning, fault.get("break_after"),
                         usage if wanted else None)
        else:
            # The model takes as long to write the answer whether or not it is streamed.
            time.sleep(self.server.stream_delay * -(-len(answer) // CHUNK_CHARS))
            self.send_json(200, _completion(request.get("model", "offline"), answer, reasoning, usage))

    def _stream_tool_calls(self, model: str, calls: List[Dict[str, Any]]) -> None:
        """Tool calls streamed in pieces, as OpenAI sends them: the id and name first, the arguments in parts."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()

        def chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> bytes:
            body = {"id": "chatcmpl-offline", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode("utf-8")

        for index, call in enumerate(calls):
            arguments = call["function"]["arguments"]
            self.wfile.write(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                                    "function": {"name": call["function"]["name"],
                                                                 "arguments": ""}}]}))
            for start in range(0, len(arguments), 10):
                self.wfile.write(chunk({"tool_calls": [{"index": index,
                                                        "function": {"arguments": arguments[start:start + 10]}}]}))
        self.wfile.write(chunk({}, "tool_calls") + b"data: [DONE]\n\n")
        self.close_connection = True

    def _drip(self, stream: bool, interval: float, seconds: float = 60.0) -> None:
        """Keep the connection busy without answering: what a per-read timeout never notices."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        if not stream:
            self.send_header("Content-Length", str(10_000_000))
        self.end_headers()
        beat = b": keep-alive\n\n" if stream else b" "
        until = time.monotonic() + seconds
        outcome = "finished"
        try:
            while time.monotonic() < until:
                self.wfile.write(beat)
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            outcome = "cut"
        with self.server.lock:
            self.server.dripped.append(outcome)
        self.close_connection = True

    def _image(self, request: Dict[str, Any]) -> None:
        """``/v1/images/generations``: a small PNG, as a URL served here or as ``b64_json`` (``image_format``)."""
        if self.server.api_key and self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            return self.send_json(401, {"error": {"message": "Incorrect API key provided"}})
        with self.server.lock:
            self.server.drawn.append(request)
        item = {"b64_json": base64.b64encode(PICTURE).decode()} if self.server.image_format == "b64_json" else \
            {"url": f"{self.server.url}/images/drawn-{len(self.server.drawn)}.png"}
        self.send_json(200, {"created": int(time.time()), "data": [{**item, "revised_prompt": request.get("prompt")}]})
        return None

    def _embeddings(self, request: Dict[str, Any]) -> None:
        """``/v1/embeddings`` as OpenAI answers it, with the deterministic local embedding (``embed_offline``)."""
        if self.server.api_key and self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            return self.send_json(401, {"error": {"message": "Incorrect API key provided"}})
        if self.server.embeddings_down:
            return self.send_json(503, {"error": {"message": "embeddings are down", "type": "server_error"}})
        inputs = request.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs or len(inputs) > 10:
            return self.send_json(400, {"error": {"message": "input must be 1 to 10 strings", "type": "invalid"}})
        with self.server.lock:
            self.server.embedded += len(inputs)
            self.server.embedding_arrivals.append(time.time())
        self.send_json(200, {"object": "list", "model": request.get("model"), "data": [
            {"object": "embedding", "index": i, "embedding": embed_offline(text)} for i, text in enumerate(inputs)],
            "usage": {"prompt_tokens": sum(len(t) for t in inputs), "total_tokens": sum(len(t) for t in inputs)}})
        return None

    def _unknown_argument(self, request: Dict[str, Any]) -> Optional[Dict[str, str]]:
        if self.server.refuse_stream_options and "stream_options" in request:
            return {"message": "Unrecognized request argument supplied: stream_options",
                    "type": "invalid_request_error", "code": "invalid_request_error"}
        return None

    def _refusal(self, messages: List[Dict[str, Any]]) -> Optional[Dict[str, str]]:
        """What a real model refuses: a prompt over its context window, pictures it cannot see."""
        size = sum(len(text_of(m.get("content", ""))) for m in messages)
        if self.server.context_limit and size > self.server.context_limit:
            return {"message": f"This model's maximum context length is {self.server.context_limit} tokens. "
                               f"However, your messages resulted in {size} tokens.",
                    "type": "invalid_request_error", "code": "context_length_exceeded"}
        if not self.server.vision and any(images_in(m.get("content", "")) for m in messages):
            return {"message": "Invalid content type. image_url is only supported by certain models.",
                    "type": "invalid_request_error", "code": "invalid_value"}
        return None

    def _stream(self, model: str, answer: str, reasoning: str, break_after: Optional[int] = None,
                usage: Optional[Dict[str, int]] = None) -> None:
        """Server-sent chunks of 8 characters, ``stream_delay`` apart (separate reasoning first);
        ``break_after`` chunks then a cut."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        step = CHUNK_CHARS
        pieces = [("reasoning_content", reasoning[i:i + step]) for i in range(0, len(reasoning), step)]
        pieces += [("content", answer[i:i + step]) for i in range(0, len(answer), step)]
        for index, (field, piece) in enumerate(pieces):
            if break_after is not None and index == break_after:
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            if self.server.stream_delay:
                time.sleep(self.server.stream_delay)
            chunk = {"id": "chatcmpl-offline", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model, "choices": [{"index": 0, "delta": {field: piece}, "finish_reason": None}]}
            if index == 0:
                self.server.first_chunk_at.append(time.monotonic())
            self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode("utf-8"))
        done = {"id": "chatcmpl-offline", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(done)}\n\n".encode("utf-8"))
        if usage:
            last = {"id": "chatcmpl-offline", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [], "usage": usage}
            self.wfile.write(f"data: {json.dumps(last)}\n\n".encode("utf-8"))
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True


EMBEDDING_DIMS = 2048


def embed_offline(text: str) -> List[float]:
    """A deterministic embedding with no model: Chinese character pairs and lower-case words hashed into
    2,048 buckets, so texts that share words are near each other. Enough to show retrieval offline."""
    vector = [0.0] * EMBEDDING_DIMS
    lowered = text.lower()
    grams = [lowered[i:i + 2] for i in range(len(lowered) - 1) if not lowered[i:i + 2].isspace()]
    grams += re.findall(r"[a-z0-9][a-z0-9\-]+", lowered)
    for gram in set(grams):
        vector[int(hashlib.md5(gram.encode("utf-8")).hexdigest()[:8], 16) % EMBEDDING_DIMS] = 1.0
    return vector


def token_usage(messages: List[Dict[str, Any]], answer: str) -> Dict[str, int]:
    """Deterministic counts for the offline model: a token per character written, plus 10 per message."""
    prompt = sum(len(text_of(m.get("content", ""))) + 10 for m in messages)
    return {"prompt_tokens": prompt, "completion_tokens": len(answer), "total_tokens": prompt + len(answer)}


def _completion(model: str, answer: str, reasoning: str = "", usage: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    message = {"role": "assistant", "content": answer, **({"reasoning_content": reasoning} if reasoning else {})}
    document = {
        "id": "chatcmpl-offline", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    if usage:
        document["usage"] = usage
    return document
