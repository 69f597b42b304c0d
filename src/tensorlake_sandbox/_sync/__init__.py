"""The sync half of the streaming writer, generated from `_async` by scripts/unasync.py."""
