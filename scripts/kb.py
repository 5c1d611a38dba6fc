#!/usr/bin/env python3
"""``make kb``：为知识库目录建立或刷新索引，并列出收录了什么。

  make kb ARGS="--oss-dir /path/to/bucket-copy"   桶的本地副本或已挂载的桶（知识库在 dingbot/knowledge/）
  make kb ARGS="--knowledge-dir 目录"              直接指定知识库目录
  make kb ARGS=--offline                           用离线的本地向量（本地 make run 的示例知识库）

.env 里 KB_BACKEND=dashvector 时，索引放在 DashVector 集合里（DASHVECTOR_ENDPOINT、DASHVECTOR_API_KEY，
集合名 DASHVECTOR_COLLECTION，没有就自动创建），知识库目录里只留一份记录 .index/remote.json。

向量由 .env 里的模型服务生成：EMBEDDING_MODEL（默认 text-embedding-3-small），地址和 Key 与聊天模型相同，
或用 EMBEDDING_ENDPOINT / EMBEDDING_API_KEY 另行指定。只有改动过的文件会重新生成向量。
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.dotenv import dotenv_name, read_dotenv, reply_environment
from shared.common.errors import ConfigError
from shared.reply.config import ReplyConfig
from shared.reply.config.knowledge import KnowledgeSettings
from shared.reply.knowledge import remote, retrieve
from shared.reply.knowledge.embeddings import Embedder, EmbeddingError
from shared.reply.knowledge.index import load, refresh, save

ROOT = Path(__file__).resolve().parent.parent


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oss-dir", type=Path, default=ROOT / ".local" / "oss",
                        help="OSS 挂载目录或桶的本地副本（默认本地 make run 的 .local/oss）")
    parser.add_argument("--knowledge-dir", type=Path, help="知识库目录（默认 <oss-dir>/dingbot/knowledge）")
    parser.add_argument("--offline", action="store_true", help="用离线的本地向量（与 make run 的离线模型相同）")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    args = parser.parse_args(argv)
    folder = args.knowledge_dir or args.oss_dir / "dingbot" / "knowledge"
    if not folder.is_dir():
        print(f"没有知识库目录 {folder}：把 md、txt、pdf、docx、csv 文档放进去再运行")
        return 1
    server = None
    env = reply_environment(read_dotenv(args.env_file).merged())
    if args.offline:
        from devstack.fake_llm import FakeLLM

        server = FakeLLM(api_key="sk-offline").start()
        kept = {k: v for k, v in env.items() if k.startswith(("KB_", "DASHVECTOR_"))}  # where the index is kept
        env = {**kept, "ENDPOINT": server.url, "CHATGPT_API_KEY": "sk-offline", "EMBEDDING_MODEL": "offline-embedding"}
    try:
        config = ReplyConfig.from_env({**env, "OSS_MOUNT_POINT": str(args.oss_dir)})
    except ConfigError as exc:
        print(f"配置有误：{dotenv_name(exc.variable)} {exc.hint}")
        return 1
    knowledge = config.knowledge
    embedder = Embedder(knowledge.embedding_base_url, knowledge.embedding_api_key, knowledge.embedding_model, 60)
    if knowledge.backend == "dashvector":
        return _sync_remote(folder, knowledge, embedder, server)
    try:
        index, changes = refresh(folder, load(folder), embedder, max_chars=knowledge.max_document_chars,
                                 seconds=3600)
    except EmbeddingError as exc:
        print(f"向量服务出错，索引没有更新：{exc}")
        return 1
    finally:
        if server:
            server.stop()
    if changes:
        save(folder, index)
    _print_changes(changes)
    print(f"{'已更新' if changes else '没有变化'}：{len(index.files)} 份文档，{len(index.chunks)} 段，"
          f"向量模型 {knowledge.embedding_model}，索引在 {folder / '.index'}")
    return 0


def _print_changes(changes: List[str]) -> None:
    for change in changes:
        kind, _, what = change.partition(": ")
        print({"added": "新增", "updated": "更新", "removed": "删除", "later": "稍后"}.get(kind, kind) + "  " + what)


def _sync_remote(folder: Path, knowledge: KnowledgeSettings, embedder: Embedder, server: Any) -> int:
    """KB_BACKEND=dashvector: the collection brought up to the folder (created when missing)."""
    try:
        changes = remote.sync(folder, retrieve.engine_for(knowledge._replace(timeout_seconds=60)), embedder,
                              max_chars=knowledge.max_document_chars, seconds=3600)
    except EmbeddingError as exc:
        print(f"向量服务或 DashVector 出错，没有更新：{exc}")
        return 1
    finally:
        if server:
            server.stop()
    _print_changes(changes)
    print(f"{'已更新' if changes else '没有变化'}：DashVector 集合 {knowledge.dashvector_collection}，"
          f"向量模型 {knowledge.embedding_model}，记录在 {folder / '.index' / remote.LEDGER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
