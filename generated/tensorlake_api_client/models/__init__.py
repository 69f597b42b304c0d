"""Contains all the data models used in inputs/outputs"""

from .create_pty_request import CreatePtyRequest
from .create_pty_request_env import CreatePtyRequestEnv
from .create_pty_response import CreatePtyResponse
from .health_response import HealthResponse
from .info_response import InfoResponse
from .list_processes_response import ListProcessesResponse
from .managed_process_exit import ManagedProcessExit
from .managed_process_info import ManagedProcessInfo
from .output_event import OutputEvent
from .output_mode import OutputMode
from .output_response import OutputResponse
from .process_health_check import ProcessHealthCheck
from .process_health_check_type import ProcessHealthCheckType
from .process_info import ProcessInfo
from .process_user_ids import ProcessUserIds
from .process_user_name import ProcessUserName
from .pty_resize_request import PtyResizeRequest
from .pty_session_info import PtySessionInfo
from .pty_session_list import PtySessionList
from .restart_policy_config import RestartPolicyConfig
from .restart_policy_config_policy import RestartPolicyConfigPolicy
from .run_exit_event import RunExitEvent
from .run_process_request import RunProcessRequest
from .run_process_request_env import RunProcessRequestEnv
from .run_start_event import RunStartEvent
from .sandbox_proxy_error import SandboxProxyError
from .send_signal_request import SendSignalRequest
from .send_signal_response import SendSignalResponse
from .start_process_request import StartProcessRequest
from .start_process_request_env import StartProcessRequestEnv
from .stdin_mode import StdinMode

__all__ = (
    "CreatePtyRequest",
    "CreatePtyRequestEnv",
    "CreatePtyResponse",
    "HealthResponse",
    "InfoResponse",
    "ListProcessesResponse",
    "ManagedProcessExit",
    "ManagedProcessInfo",
    "OutputEvent",
    "OutputMode",
    "OutputResponse",
    "ProcessHealthCheck",
    "ProcessHealthCheckType",
    "ProcessInfo",
    "ProcessUserIds",
    "ProcessUserName",
    "PtyResizeRequest",
    "PtySessionInfo",
    "PtySessionList",
    "RestartPolicyConfig",
    "RestartPolicyConfigPolicy",
    "RunExitEvent",
    "RunProcessRequest",
    "RunProcessRequestEnv",
    "RunStartEvent",
    "SandboxProxyError",
    "SendSignalRequest",
    "SendSignalResponse",
    "StartProcessRequest",
    "StartProcessRequestEnv",
    "StdinMode",
)
