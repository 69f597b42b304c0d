"""Everything written once, async (stdin writes, processes, terminals, the transport); `_sync` is
generated from it by scripts/unasync.py."""
