"""Contains shared errors types that can be raised from API functions"""


class UnexpectedStatus(Exception):
    """Raised by every API function for any status other than the documented success.

    Only with a plain Client or AuthenticatedClient: a ``tensorlake_sandbox.SandboxClient`` raises the
    typed ``tensorlake_sandbox.SandboxError`` for the status instead, before the function sees the
    response. ``status_code`` is the HTTP status and ``content`` the raw body.
    """

    def __init__(self, status_code: int, content: bytes):
        self.status_code = status_code
        self.content = content

        super().__init__(
            f"Unexpected status code: {status_code}\n\nResponse content:\n{content.decode(errors='ignore')}"
        )


__all__ = ["UnexpectedStatus"]
