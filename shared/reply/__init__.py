"""``dingtalk_chatgpt_reply``: answer one message with the model and deliver it to DingTalk."""
