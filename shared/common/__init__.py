"""Code both functions use; nothing here talks to a platform."""
