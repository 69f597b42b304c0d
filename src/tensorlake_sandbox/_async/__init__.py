"""The async half of the streaming writer: the one source that `_sync` is generated from."""
