"""wheelpatch: change the dependency metadata and local version label of existing wheels."""

from __future__ import annotations

__version__ = "0.1.0"

from .api import patch_wheel, plan_wheel
from .config import Config, Override, load_config, parse_config
from .errors import ConfigError, InvalidWheel, OutputError, WheelpatchError
from .plan import Change, PatchPlan, Unchanged, plan_patch
from .rules import RequirementsEdit, edit_requirements
from .wheel import SourceWheel, read_wheel
from .writer import write_wheel

__all__ = [
    "Change",
    "Config",
    "ConfigError",
    "InvalidWheel",
    "OutputError",
    "Override",
    "PatchPlan",
    "RequirementsEdit",
    "SourceWheel",
    "Unchanged",
    "WheelpatchError",
    "__version__",
    "edit_requirements",
    "load_config",
    "parse_config",
    "patch_wheel",
    "plan_patch",
    "plan_wheel",
    "read_wheel",
    "write_wheel",
]
