"""FC event function ``dingtalk_chatgpt_reply``: handler ``index.handler``, invoked async by the receiver."""

from shared.reply.app import handle_event


def handler(event, context):
    return handle_event(event, context)
