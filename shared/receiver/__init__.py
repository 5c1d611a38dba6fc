"""``dingtalk_conversation``: verify the callback, hand the message to the reply function, acknowledge."""
