"""The brain ``BRAIN`` names, built on first use: each one's client loads only when it answers."""

from __future__ import annotations

from shared.reply.brains.base import Brain
from shared.reply.config import ReplyConfig
from shared.reply.oss.storage import Storage


def brain_for(config: ReplyConfig, storage: Storage) -> Brain:
    if config.brain.kind == "bailian":
        from shared.reply.brains.bailian import BailianBrain

        return BailianBrain(config.brain, storage.image_upload())
    if config.brain.kind == "dify":
        from shared.reply.brains.dify import DifyBrain

        return DifyBrain(config.brain)
    from shared.reply.brains.chat import ChatBrain

    return ChatBrain(config.model, config.tools, storage.image_upload())
