"""Talks to the model: any OpenAI-compatible chat completions endpoint, through the ``openai`` SDK."""
