"""Code shared by the two DingTalk functions; packaging copies it next to each ``index.py``."""
