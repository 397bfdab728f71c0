"""Safety: the sandbox for generated code (monitors, the gate and the audit log join here)."""

from agentforge.safety.sandbox import SandboxResult, arun_python, extract_code, network_isolation, run_python

__all__ = ["SandboxResult", "arun_python", "extract_code", "network_isolation", "run_python"]
