"""The bot looks things up: a model loop with tools (links, web search), within TIMEOUT and the card budget,
and a link reader that never becomes a way into the function's network."""

import json

import pytest
from conftest import context

from devstack.fake_dingtalk import callback_body
from devstack.fake_search import FakeSearch
from devstack.loopback import JsonHandler, LoopbackServer
from shared.receiver.dingtalk.callback import parse_callback
from shared.reply.tools.base import ToolError
from shared.reply.tools.fetch import fetch


@pytest.fixture
def web():
    server = FakeSearch().start()
    yield server
    server.stop()


@pytest.fixture
def tool_env(reply_env, web):
    host, port = web.address
    return {**reply_env, "TOOL_ALLOW_HOSTS": f"{host}:{port}"}


def ask(reply, sink, text, **kwargs):
    body = callback_body(text, webhook_base=sink.url, **kwargs)
    status = json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))["status"]
    return status


def said(sink):
    return [m.get("text", {}).get("content") or m["markdown"]["text"] for m in (x["body"] for x in sink.messages)]


def history(oss):
    return [json.loads(p.read_text("utf-8")) for p in (oss / "dingbot" / "history").glob("*/*-turn-*")]


def test_a_link_in_the_question_is_read_and_only_its_main_text_reaches_the_model(reply, tool_env, use_env, llm, sink,
                                                                                 web, oss):
    use_env(tool_env)
    assert ask(reply, sink, f"总结一下这个链接 {web.url}/pages/3") == "answered"
    tool_message = [m for m in llm.requests[-1]["messages"] if m["role"] == "tool"][0]
    assert "第 3 篇示例文章" in tool_message["content"] and "版权所有" not in tool_message["content"]
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["read_url"]
    assert "第 3 篇示例文章" in said(sink)[-1]
    [turn] = history(oss)
    assert turn["answer"].endswith(f"（参考：{web.url}/pages/3）") and "tool" not in json.dumps(turn)


def test_several_links_in_one_round_are_read_at_the_same_time(reply, tool_env, use_env, llm, sink, web):
    use_env(tool_env)
    web.page_delay = 0.3
    assert ask(reply, sink, f"比较 {web.url}/pages/1 和 {web.url}/pages/2") == "answered"
    assert web.most_pages_in_flight == 2
    assert len([m for m in llm.requests[-1]["messages"] if m["role"] == "tool"]) == 2


@pytest.mark.parametrize("provider", ["bocha", "tavily", "searxng"])
def test_web_search_through_each_provider_in_its_format(provider, reply, tool_env, use_env, llm, sink, web):
    use_env({**tool_env, "SEARCH_PROVIDER": provider, "SEARCH_ENDPOINT": web.url,
             **({"SEARCH_API_KEY": web.api_key} if provider != "searxng" else {})})
    assert ask(reply, sink, "搜索 杭州今天的新闻") == "answered"
    [search] = [r for r in web.requests if r["path"] in ("/v1/web-search", "/search")]
    if provider == "searxng":
        assert search["query"]["format"] == "json" and "杭州" in search["query"]["q"]
    else:
        assert search["authorization"] == f"Bearer {web.api_key}" and "杭州" in search["body"]["query"]
    tool_message = [m for m in llm.requests[-1]["messages"] if m["role"] == "tool"][0]["content"]
    assert f"{web.url}/pages/1" in tool_message and "示例新闻 1" in tool_message


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/pages/1", "http://localhost:{port}/pages/1",
                                 "http://[::1]:{port}/pages/1", "http://2130706433:{port}/pages/1",
                                 "http://0x7f.0.0.1:{port}/pages/1", "http://user@127.0.0.1:{port}/pages/1",
                                 "http://169.254.169.254/latest/meta-data/", "http://100.100.100.200/latest/",
                                 "file:///etc/passwd", "http://10.0.0.1/"],
                         ids=["loopback", "name", "ipv6", "decimal", "hex", "userinfo", "link-local", "metadata",
                              "file", "private"])
def test_links_into_the_functions_network_are_never_fetched_and_the_answer_still_comes(
        url, reply, reply_env, use_env, llm, sink, web):
    use_env(reply_env)  # no TOOL_ALLOW_HOSTS: the loopback page server is off limits
    link = url.replace("{port}", str(web.address[1]))
    assert ask(reply, sink, f"打开 {link}") == "answered"
    assert web.requests == [] and web.most_pages_in_flight == 0
    tool_messages = [m for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert not tool_messages or "failed" in tool_messages[0]["content"]


class _Sized(JsonHandler):
    """``/<n>``: n bytes of text, with a Content-Length, or (``/<n>?undeclared``) without one, ended by closing."""

    def do_GET(self) -> None:
        size, declared = int(self.path.split("?")[0].strip("/")), "undeclared" not in self.path
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if declared:
            self.send_header("Content-Length", str(size))
        else:
            self.close_connection = True
        self.end_headers()
        self.wfile.write(b"x" * size)


@pytest.mark.parametrize("declared", [True, False])
def test_a_link_reads_up_to_its_size_limit_and_not_a_byte_more(declared):
    server = LoopbackServer(_Sized).start()
    host, port = server.address
    suffix = "" if declared else "?undeclared"
    try:
        body = fetch(f"{server.url}/{1 << 20}{suffix}", max_bytes=1 << 20, seconds=10, allow=(f"{host}:{port}",)).body
        assert len(body) == 1 << 20
        with pytest.raises(ToolError, match="larger than 1 MB"):
            fetch(f"{server.url}/{(1 << 20) + 1}{suffix}", max_bytes=1 << 20, seconds=10, allow=(f"{host}:{port}",))
    finally:
        server.stop()


def test_a_redirect_into_private_space_is_checked_again_and_refused(reply, tool_env, use_env, llm, sink, web):
    from devstack.loopback import JsonHandler, LoopbackServer

    class Redirect(JsonHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

    hop = LoopbackServer(Redirect).start()
    try:
        use_env({**tool_env, "TOOL_ALLOW_HOSTS": f"127.0.0.1:{hop.address[1]}"})
        assert ask(reply, sink, f"看看 http://127.0.0.1:{hop.address[1]}/go") == "answered"
        tool_message = [m for m in llm.requests[-1]["messages"] if m["role"] == "tool"][0]["content"]
        assert "169.254.169.254" in tool_message and "failed" in tool_message
    finally:
        hop.stop()


def test_a_model_that_refuses_tools_is_asked_again_without_them_and_that_is_remembered(reply, tool_env, use_env,
                                                                                        llm, sink, web):
    use_env(tool_env)
    llm.refuse_tools = True
    assert [ask(reply, sink, f"看看 {web.url}/pages/1") for _ in range(2)] == ["answered", "answered"]
    assert ["tools" in r for r in llm.requests] == [True, False, False]
    assert "tools" not in json.dumps(said(sink), ensure_ascii=False)


def test_tool_rounds_are_bounded_and_a_last_request_without_tools_answers(reply, tool_env, use_env, llm, sink, web):
    use_env({**tool_env, "MAX_TOOL_ROUNDS": "2"})
    llm.always_call = lambda messages, tools: [{"id": f"c{len(messages)}", "type": "function", "function": {
        "name": "read_url", "arguments": json.dumps({"url": f"{web.url}/pages/1"})}}]
    assert ask(reply, sink, "一直查下去") == "answered"
    assert ["tools" in r for r in llm.requests] == [True, True, False]


def test_the_card_shows_a_status_line_while_a_tool_runs_and_not_in_the_answer(reply, tool_env, use_env, llm, sink,
                                                                              web):
    use_env({**tool_env, "DINGTALK_APP_KEY": sink.app_key, "DINGTALK_APP_SECRET": sink.app_secret,
             "DINGTALK_API_ENDPOINT": sink.url, "CARD_UPDATE_INTERVAL_MS": "50", "CARD_MAX_CALLS": "8"})
    web.page_delay = 0.2
    assert ask(reply, sink, f"读一下 {web.url}/pages/2", conversation_id="cid-tool-card") == "answered"
    [card] = sink.cards_in("cid-tool-card")
    assert any(u["content"].startswith("📄 正在读取：127.0.0.1") for u in card["updates"])
    assert "正在读取" not in card["content"] and "第 2 篇示例文章" in card["content"]
    assert sink.card_calls() <= 8


def test_the_prompt_carries_the_date_and_time_in_tz(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "TZ": "Asia/Shanghai"})
    ask(reply, sink, "今天星期几")
    clock = [m for m in llm.raw_requests[-1]["messages"] if m["role"] == "system"][0]["content"]
    assert clock.startswith("当前时间：") and "星期" in clock and "Asia/Shanghai" in clock


@pytest.mark.parametrize("setting, offered", [("off", None), ("read_url", ["read_url"])])
def test_tools_can_be_turned_off_or_listed(setting, offered, reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "TOOLS": setting, "SEARCH_PROVIDER": "searxng", "SEARCH_ENDPOINT": "http://127.0.0.1:9"})
    ask(reply, sink, "你好")
    tools = llm.requests[-1].get("tools")
    assert (None if tools is None else [t["function"]["name"] for t in tools]) == offered


def test_tools_command_lists_what_is_on(reply, tool_env, use_env, llm, sink, web):
    use_env({**tool_env, "SEARCH_PROVIDER": "tavily", "SEARCH_API_KEY": "k"})
    ask(reply, sink, "\\tools")
    listing = said(sink)[-1]
    assert "read_url" in listing and "web_search" in listing and "tavily" in listing


def test_make_run_offline_searches_a_local_service_and_reads_its_result(tmp_path):
    from devstack.stack import LocalStack, StackSettings
    with LocalStack(StackSettings(state_dir=tmp_path)) as stack:
        searched = stack.send("搜索 今天的新闻")
        linked = stack.send(f"总结一下 {stack.search.url}/pages/2")
    assert f"{stack.search.url}/pages/1" in searched.replies[0]["text"]["content"]
    assert "第 2 篇示例文章" in linked.replies[0]["text"]["content"]


# --- MCP -----------------------------------------------------------------------------------------------

@pytest.fixture
def mcp_server():
    """A real MCP server from the official SDK, over streamable HTTP on 127.0.0.1; it records the headers it got."""
    import socket
    import threading
    import time

    import uvicorn
    from mcp.server.mcpserver.server import MCPServer

    server = MCPServer("orders")
    seen = []
    answers = {}  # order id -> what the tool answers (a hostile tool in the injection tests)

    @server.tool()
    def lookup_order(order_id: str) -> str:
        """Look up an order by its id: its status."""
        return answers.get(order_id) or f"订单 {order_id}：已发货，预计明天送达"

    app = server.streamable_http_app()

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await app(scope, receive, send)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = uvicorn.Server(uvicorn.Config(recording, host="127.0.0.1", port=port, log_level="error", lifespan="on"))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    while not runner.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/mcp", seen, answers
    runner.should_exit = True
    thread.join(10)


def call_mcp(messages, tools):
    """A model that uses the order tool for "订单" questions."""
    question = [m for m in messages if m["role"] == "user"][-1]["content"]
    if "订单" not in question or any(m["role"] == "tool" for m in messages):
        return []
    [name] = [t["function"]["name"] for t in tools if t["function"]["name"].endswith("lookup_order")]
    return [{"id": "c1", "type": "function", "function": {"name": name, "arguments": '{"order_id": "A-1001"}'}}]


def test_tools_of_an_mcp_server_are_offered_prefixed_and_called(reply, reply_env, use_env, llm, sink, mcp_server):
    from shared.reply.tools import mcp
    mcp._LISTED.clear()
    url, seen, _ = mcp_server
    use_env({**reply_env, "MCP_SERVERS": json.dumps({"shop": {"url": url, "headers": {"Authorization": "Bearer t"}}})})
    llm.always_call = call_mcp
    assert ask(reply, sink, "查一下订单 A-1001") == "answered"
    offered = [t["function"]["name"] for t in llm.requests[0]["tools"]]
    assert offered == ["read_url", "shop__lookup_order"]
    assert "已发货" in said(sink)[-1]
    assert seen and all(h.get("authorization") == "Bearer t" for h in seen)


def test_an_mcp_server_that_is_down_costs_its_tools_not_the_answer(reply, reply_env, use_env, llm, sink, caplog):
    from devstack.loopback import free_port
    from shared.reply.tools import mcp
    mcp._LISTED.clear()
    use_env({**reply_env, "MCP_SERVERS": json.dumps({"down": {"url": f"http://127.0.0.1:{free_port()}/mcp"}})})
    assert ask(reply, sink, "你好") == "answered"
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["read_url"]
    assert "MCP server down is not available" in caplog.text


def test_the_mcp_client_reads_what_the_official_client_reads(mcp_server):
    """The client of our own against the SDK's server, beside the SDK's own client: the same tools, the same
    answer, and the session held and closed as the specification says."""
    import anyio
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from shared.reply.tools.mcp import Server, Session
    url, seen, _ = mcp_server
    with Session(Server("orders", url), 8) as session:
        ours = session.tools()
        called = session.request("tools/call", {"name": "lookup_order", "arguments": {"order_id": "A-7"}})
    ours_seen = list(seen)

    async def official():
        async with httpx2.AsyncClient() as http, streamable_http_client(url, http_client=http) as streams, \
                ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            return await session.list_tools(), await session.call_tool("lookup_order", {"order_id": "A-7"})

    listed, result = anyio.run(official)
    assert [(t["name"], t["description"], t["inputSchema"]) for t in ours] == \
        [(t.name, t.description, t.input_schema) for t in listed.tools]
    assert [part["text"] for part in called["content"]] == [part.text for part in result.content]
    assert not called.get("isError") and not result.is_error
    session_ids = {h.get("mcp-session-id") for h in ours_seen[1:]}
    assert len(session_ids) == 1 and None not in session_ids  # every request after initialize, one session
    assert all(h.get("mcp-protocol-version") for h in ours_seen[1:])


def test_an_mcp_tool_error_and_an_unknown_tool_are_tool_failures(mcp_server):
    from shared.reply.tools.base import ToolError
    from shared.reply.tools.mcp import McpTool, Server
    url, _, _ = mcp_server
    missing = McpTool(Server("orders", url), {"name": "no_such_tool"})
    with pytest.raises(ToolError):
        missing.run({}, 8)
    refused = McpTool(Server("orders", url, (("Authorization", "x"),)), {"name": "lookup_order"})
    with pytest.raises(ToolError):
        refused.run({"order_id": 5}, 8)  # not a string: the server's validation refuses it


def test_mcp_tool_names_fit_openais_function_name_pattern():
    import re

    from shared.reply.tools.mcp import function_name
    for server, tool in (("shop", "lookup.order"), ("a" * 30, "b" * 60), ("地图", "search poi")):
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", function_name(server, tool))
    assert function_name("a" * 30, "b" * 60) != function_name("a" * 30, "b" * 59 + "c")


# --- drawing -------------------------------------------------------------------------------------------

def test_a_drawn_picture_is_shown_in_the_chat_as_a_markdown_image(reply, reply_env, use_env, llm, sink, oss):
    use_env({**reply_env, "IMAGE_MODEL": "wanx-v1"})
    assert ask(reply, sink, "画一张新年海报") == "answered"
    [request] = llm.drawn
    assert request["model"] == "wanx-v1" and "新年海报" in request["prompt"]
    shown = said(sink)[-1]
    assert f"![图片]({llm.url}/images/drawn-1.png)" in shown
    [turn] = history(oss)
    assert "[图片]" in turn["answer"] and "drawn-1.png" not in turn["answer"]


def test_a_picture_that_comes_back_as_data_is_shown_from_the_bucket_through_a_signed_url(
        reply, reply_env, use_env, llm, sink):
    from devstack.fake_oss import FakeOSS
    server = FakeOSS().start()
    try:
        use_env({**reply_env, "IMAGE_MODEL": "gpt-image-1", "OSS_BUCKET": server.bucket,
                 "OSS_ENDPOINT": server.endpoint})
        llm.image_format = "b64_json"
        assert ask(reply, sink, "画一只猫") == "answered"
        [key] = [k for k in server.objects if k.startswith("dingbot/images/")]
        shown = said(sink)[-1]
        assert f"/{server.bucket}/{key}" in shown and "x-oss-signature=" in shown and "OSS4-HMAC-SHA256" in shown
    finally:
        server.stop()


def test_without_a_bucket_a_picture_as_data_is_told_and_the_answer_still_comes(reply, reply_env, use_env, llm, sink):
    use_env({**reply_env, "IMAGE_MODEL": "gpt-image-1"})
    llm.image_format = "b64_json"
    assert ask(reply, sink, "画一只猫") == "answered"
    tool_message = [m for m in llm.requests[-1]["messages"] if m["role"] == "tool"][0]["content"]
    assert "no OSS_BUCKET" in tool_message and "![图片]" not in said(sink)[-1]


GBK_ARTICLE = "<html><head>{meta}<title>星河计划</title></head><body><article><p>星河计划由李四负责，" \
              "预算为三百万元，第一阶段在杭州进行。</p><p>第二阶段的目标是覆盖华东地区的全部门店。</p></article>" \
              "</body></html>"


@pytest.mark.parametrize("content_type, meta", [
    ("text/html", '<meta charset="gbk">'),
    ("text/html", '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">'),
    ("text/html", ""),  # declared nowhere: the bytes decide
    ("text/html; charset=GB18030", '<meta charset="utf-8">'),  # the header wins over the page
], ids=["meta-charset", "http-equiv", "undeclared", "header-wins"])
def test_a_page_in_gbk_is_read_as_a_browser_reads_it(content_type, meta, web):
    from shared.reply.tools.links import ReadLink

    web.pages["gbk"] = (content_type, GBK_ARTICLE.format(meta=meta).encode("gbk"))
    host, port = web.address
    text = ReadLink(1 << 20, 5000, allow=(f"{host}:{port}",)).run({"url": f"{web.url}/pages/gbk"}, 5).text
    assert "星河计划由李四负责" in text and "华东地区" in text


def test_the_time_in_the_prompt_follows_tz_even_without_the_mount(reply, reply_env, use_env, llm, sink):
    import datetime as dt
    from zoneinfo import ZoneInfo

    use_env({**reply_env, "TZ": "America/New_York", "OSS_MOUNT_POINT": "/nonexistent/mount"})
    ask(reply, sink, "现在几点")
    clock = [m for m in llm.raw_requests[-1]["messages"] if m["role"] == "system"][0]["content"]
    now = dt.datetime.now(ZoneInfo("America/New_York"))
    assert "America/New_York" in clock and (f"{now:%Y-%m-%d %H:}" in clock or now.minute == 0)


def test_a_misspelt_tz_stops_the_function_with_a_sentence_naming_it(reply, reply_env, use_env, llm, sink):
    from shared.reply import texts

    use_env({**reply_env, "TZ": "Asia/Shangai"})
    body = callback_body("你好", webhook_base=sink.url)
    answer = json.loads(reply(parse_callback(json.dumps(body).encode()).to_payload(), context("reply")))
    assert answer == {"status": "misconfigured", "variable": "TZ"} and llm.requests == []
    assert sink.wait_for(1)[0]["text"]["content"] == texts.MISCONFIGURED.format(variable="TZ")
