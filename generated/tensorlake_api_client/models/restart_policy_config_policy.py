from enum import StrEnum


class RestartPolicyConfigPolicy(StrEnum):
    ALWAYS = "always"
    NEVER = "never"
    ON_FAILURE = "on_failure"

    def __str__(self) -> str:
        return str(self.value)
