"""The sync half of the package, generated from `_async` by scripts/unasync.py: do not edit."""
