"""Contains all the data models used in inputs/outputs"""

from .list_processes_response import ListProcessesResponse
from .output_mode import OutputMode
from .output_response import OutputResponse
from .process_info import ProcessInfo
from .sandbox_proxy_error import SandboxProxyError
from .send_signal_request import SendSignalRequest
from .send_signal_response import SendSignalResponse
from .start_process_request import StartProcessRequest
from .start_process_request_env import StartProcessRequestEnv
from .stdin_mode import StdinMode

__all__ = (
    "ListProcessesResponse",
    "OutputMode",
    "OutputResponse",
    "ProcessInfo",
    "SandboxProxyError",
    "SendSignalRequest",
    "SendSignalResponse",
    "StartProcessRequest",
    "StartProcessRequestEnv",
    "StdinMode",
)
