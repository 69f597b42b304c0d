from enum import StrEnum


class OutputMode(StrEnum):
    CAPTURE = "capture"
    DISCARD = "discard"

    def __str__(self) -> str:
        return str(self.value)
