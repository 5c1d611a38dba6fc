"""Stage one: may this message be answered? ``ALLOWED_CONVERSATIONS``/``ALLOWED_USERS`` and daily quotas.

A refusal is one polite sentence and no model call. Quotas count answered messages and tokens of
the current day in ``TZ`` from today's usage records (``oss/usage.py``): one listing, no reads.
Messages answered at the same moment on other instances are not in the listing yet, so a limit
can be overshot by the answers already in flight, never by more. Commands are not counted and
are never refused by a quota.
"""

from __future__ import annotations

from typing import List, Optional

from shared.common import log
from shared.reply import texts
from shared.reply.address import ChatAddress
from shared.reply.config.chat import AccessSettings
from shared.reply.config.storage import Quotas
from shared.reply.oss.usage import Entry, Totals, short

logger = log.get("admit")


def not_allowed(access: AccessSettings, address: ChatAddress) -> Optional[str]:
    """``ALLOWED_CONVERSATIONS`` / ``ALLOWED_USERS``: unset lets everyone in."""
    if access.conversations and address.conversation_id not in access.conversations:
        logger.warning("refused conversation %s: not in ALLOWED_CONVERSATIONS", address.conversation_id)
        return texts.NOT_ALLOWED.format(scope="会话")
    if access.users and not address.asker_ids & set(access.users):
        logger.warning("refused sender %s: not in ALLOWED_USERS", address.sender)
        return texts.NOT_ALLOWED.format(scope="用户")
    return None


def over_quota(quotas: Quotas, address: ChatAddress, today: Optional[List[Entry]],
               resets: str) -> Optional[str]:
    """The sentence for the first daily limit this message would pass, or None. ``today`` None: the
    records could not be read, and the message goes ahead (storage failures never cost the answer)."""
    if not quotas.active or today is None:
        return None
    if address.asker_ids & set(quotas.exempt):
        return None
    sender, conversation = short(address.sender), short(address.conversation_id)
    mine = Totals.of(e for e in today if e.sender == sender)
    here = Totals.of(e for e in today if e.conversation == conversation)
    for limit, used, name, what in (
            (quotas.user_messages, mine.messages, "QUOTA_USER_DAILY_MESSAGES", "你今天的提问次数"),
            (quotas.user_tokens, mine.tokens, "QUOTA_USER_DAILY_TOKENS", "你今天的 token 用量"),
            (quotas.conversation_tokens, here.tokens, "QUOTA_CONVERSATION_DAILY_TOKENS", "本会话今天的 token 用量")):
        if limit is not None and used >= limit:
            logger.info("over %s: %d of %d used today", name, used, limit)
            return texts.OVER_QUOTA.format(what=what, limit=f"{limit:,}", resets=resets)
    return None
