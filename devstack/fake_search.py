"""Web search providers on loopback, each in its documented format, plus the pages their results link to.

- bocha: ``POST /v1/web-search`` (``Authorization: Bearer``) → ``{code: 200, data: {webPages: {value: [...]}}}``
- tavily: ``POST /search`` (``Authorization: Bearer``) → ``{results: [{title, url, content, score}]}``
- searxng: ``GET /search?q=…&format=json`` → ``{results: [{title, url, content}]}`` (403 without ``format=json``,
  as an instance that has not enabled JSON answers)
Results point at ``/pages/<n>``, small HTML articles served here too, so the link reader can open them;
``pages`` serves other bodies at ``/pages/<name>`` (a page in another encoding, a hostile page) and
``extra_results`` adds results to every search. Requests are kept in ``requests``; a wrong key is refused
with 401.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, List, Tuple
from urllib.parse import unquote, urlsplit

from devstack.loopback import JsonHandler, LoopbackServer


def article(number: int) -> str:
    return (f"<html><head><title>示例新闻 {number}</title></head><body><nav>首页 | 新闻 | 关于</nav>"
            f"<article><h1>示例新闻 {number}</h1><p>这是本地搜索服务提供的第 {number} 篇示例文章，"
            f"用来演示机器人读取链接。正文第一段说明了发生了什么。</p><p>正文第二段给出更多细节，"
            f"比如时间是今天上午，地点在杭州。</p></article><footer>版权所有</footer></body></html>")


class FakeSearch(LoopbackServer):
    def __init__(self, api_key: str = "search-key", port: int = 0, page_delay: float = 0.0) -> None:
        super().__init__(_Handler, port)
        self.api_key = api_key
        self.page_delay = page_delay
        self.search_delay = 0.0  # seconds each search takes (a card shows the tool's status line meanwhile)
        self.requests: List[Dict[str, Any]] = []
        self.pages: Dict[str, Tuple[str, bytes]] = {}  # name -> (Content-Type, body)
        self.extra_results: List[Dict[str, str]] = []
        self.pages_in_flight = 0
        self.most_pages_in_flight = 0
        self.lock = threading.Lock()

    def results(self, query: str) -> List[Dict[str, str]]:
        return [{"title": f"{query}：示例新闻 {n}", "url": f"{self.url}/pages/{n}",
                 "content": f"关于「{query}」的第 {n} 条示例结果。"} for n in (1, 2)] + self.extra_results


class _Handler(JsonHandler):
    server: FakeSearch

    def _record(self, body: Any) -> None:
        """Note the search request, then take the time a search takes."""
        time.sleep(self.server.search_delay)
        with self.server.lock:
            self.server.requests.append({"method": self.command, "path": urlsplit(self.path).path, "body": body,
                                         "query": self.query(),
                                         "authorization": self.headers.get("Authorization", "")})

    def _keyed(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            self.send_json(401, {"code": 401, "msg": "invalid api key"})
            return False
        return True

    def do_POST(self) -> None:
        body = json.loads(self.read_body() or b"{}")
        self._record(body)
        path = urlsplit(self.path).path
        if not self._keyed():
            return
        results = self.server.results(str(body.get("query", "")))
        if path == "/v1/web-search":
            pages = [{"name": r["title"], "url": r["url"], "snippet": r["content"], "summary": r["content"],
                      "siteName": "本地", "datePublished": time.strftime("%Y-%m-%dT%H:%M:%S+08:00")} for r in results]
            self.send_json(200, {"code": 200, "log_id": "local", "msg": None,
                                 "data": {"_type": "SearchResponse", "webPages": {"value": pages}}})
        elif path == "/search":
            self.send_json(200, {"query": body.get("query"), "results": [{**r, "score": 0.9} for r in results],
                                 "response_time": 0.01})
        else:
            self.send_json(404, {"error": "not found"})

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        if path.startswith("/pages/"):
            return self._page(path)
        self._record(None)
        query = self.query()
        if path != "/search":
            return self.send_json(404, {"error": "not found"})
        if query.get("format") != "json":
            return self.send_json(403, {"error": "format not allowed"})
        self.send_json(200, {"query": query.get("q"), "results": self.server.results(query.get("q", ""))})
        return None

    def _page(self, path: str) -> None:
        with self.server.lock:
            self.server.pages_in_flight += 1
            self.server.most_pages_in_flight = max(self.server.most_pages_in_flight, self.server.pages_in_flight)
        try:
            time.sleep(self.server.page_delay)
            number = path.rsplit("/", 1)[-1]
            content_type, body = self.server.pages.get(number) or (
                "text/html; charset=utf-8", article(int(number) if number.isdigit() else 0).encode("utf-8"))
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with self.server.lock:
                self.server.pages_in_flight -= 1
