from enum import StrEnum


class StdinMode(StrEnum):
    CLOSED = "closed"
    PIPE = "pipe"

    def __str__(self) -> str:
        return str(self.value)
