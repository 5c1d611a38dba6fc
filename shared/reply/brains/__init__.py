"""What answers a question: the chat model with tools (``chat.py``), a Bailian application
(``bailian.py``) or a Dify app (``dify.py``), behind one interface (``base.py``)."""
