"""Tool: search the web (``web_search``) through the provider ``SEARCH_PROVIDER`` names.

Each provider in its documented format, on ``requests``:
- ``bocha`` (博查, https://open.bochaai.com): ``POST /v1/web-search`` with ``Authorization: Bearer``,
  ``{query, summary, count}`` → ``{code, data: {webPages: {value: [{name, url, snippet, summary}]}}}``.
- ``tavily`` (https://docs.tavily.com): ``POST /search`` with ``Authorization: Bearer``,
  ``{query, max_results}`` → ``{results: [{title, url, content}]}``.
- ``searxng`` (self-hosted): ``GET /search?q=…&format=json`` → ``{results: [{title, url, content}]}``
  (the instance must have the JSON format enabled).
The endpoint is the operator's (``SEARCH_ENDPOINT`` overrides the default), so it is trusted as
configured; the results' links are only text for the model.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import requests

from shared.reply.tools.base import ToolError, ToolResult, one_string, status_line, text_argument

PROVIDERS = {"bocha": "https://api.bochaai.com", "tavily": "https://api.tavily.com", "searxng": ""}
RESULTS = 6


def _bocha(session: requests.Session, base: str, key: str, query: str, seconds: float) -> List[Tuple[str, str, str]]:
    response = session.post(f"{base}/v1/web-search", json={"query": query, "summary": True, "count": RESULTS},
                            headers={"Authorization": f"Bearer {key}"}, timeout=seconds, allow_redirects=False)
    answer = _json(response, "bocha")
    if answer.get("code") not in (None, 200):
        raise ToolError(f"bocha answered code {answer.get('code')}: {answer.get('msg') or ''}")
    pages = ((answer.get("data") or {}).get("webPages") or {}).get("value") or []
    return [(p.get("name", ""), p.get("url", ""), p.get("summary") or p.get("snippet") or "") for p in pages]


def _tavily(session: requests.Session, base: str, key: str, query: str, seconds: float) -> List[Tuple[str, str, str]]:
    response = session.post(f"{base}/search", json={"query": query, "max_results": RESULTS},
                            headers={"Authorization": f"Bearer {key}"}, timeout=seconds, allow_redirects=False)
    return [(r.get("title", ""), r.get("url", ""), r.get("content", ""))
            for r in _json(response, "tavily").get("results") or []]


def _searxng(session: requests.Session, base: str, key: str, query: str, seconds: float) -> List[Tuple[str, str, str]]:
    response = session.get(f"{base}/search", params={"q": query, "format": "json"}, timeout=seconds,
                           allow_redirects=False)
    return [(r.get("title", ""), r.get("url", ""), r.get("content", ""))
            for r in (_json(response, "searxng").get("results") or [])[:RESULTS]]


CALLS = {"bocha": _bocha, "tavily": _tavily, "searxng": _searxng}


def _json(response: requests.Response, provider: str) -> Dict[str, Any]:
    if response.status_code != 200:
        raise ToolError(f"{provider} answered HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise ToolError(f"{provider} did not answer JSON") from None
    if not isinstance(answer, dict):
        raise ToolError(f"{provider} did not answer a JSON object")
    return answer


class WebSearch:
    name = "web_search"
    public_results = True  # search results are no secret of the conversation
    description = ("Search the web for current information (news, prices, facts after your training). "
                   "Returns titles, links and snippets; cite the links you use.")
    parameters: Dict[str, Any] = one_string("query", "what to search for, in the user's language")

    def __init__(self, provider: str, key: str, endpoint: Optional[str],
                 session: Optional[requests.Session] = None) -> None:
        self.provider = provider
        self.key = key
        self.base = (endpoint or PROVIDERS[provider]).rstrip("/")
        self.session = session or requests.Session()

    def status(self, arguments: Dict[str, Any]) -> str:
        return status_line("🔍 正在搜索", arguments, "query", 30)

    def run(self, arguments: Dict[str, Any], seconds: float) -> ToolResult:
        query = text_argument(arguments, "query")
        try:
            results = CALLS[self.provider](self.session, self.base, self.key, query, seconds)
        except requests.RequestException as exc:
            raise ToolError(f"{self.provider} could not be reached ({type(exc).__name__})") from None
        results = [r for r in results if r[1]][:RESULTS]
        if not results:
            return ToolResult(f"No results for {query!r}.")
        lines = [f"[{i}] {title}\n{url}\n{snippet[:500]}" for i, (title, url, snippet) in enumerate(results, 1)]
        return ToolResult("\n\n".join(lines), tuple(url for _, url, _ in results))
