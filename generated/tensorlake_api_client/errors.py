"""Errors raised by the API functions."""


class UnexpectedStatus(Exception):
    """Raised by every API function when the server answers with any status other than the documented success.

    ``status_code`` is the HTTP status and ``content`` the raw body (an error body is often
    JSON with ``error`` and ``code``).
    """

    def __init__(self, status_code: int, content: bytes):
        self.status_code = status_code
        self.content = content

        super().__init__(
            f"Unexpected status code: {status_code}\n\nResponse content:\n{content.decode(errors='ignore')}"
        )


__all__ = ["UnexpectedStatus"]
