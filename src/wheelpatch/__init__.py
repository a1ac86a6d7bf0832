"""wheelpatch: change the dependency metadata and local version label of existing wheels.

The public names are loaded on first use, so that the command line can start hashing a wheel
before the rest of the package (and packaging) is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "patch_wheel": "api",
    "plan_wheel": "api",
    "Config": "config",
    "Override": "config",
    "load_config": "config",
    "parse_config": "config",
    "ConfigError": "errors",
    "InvalidWheel": "errors",
    "OutputError": "errors",
    "WheelpatchError": "errors",
    "Change": "plan",
    "PatchPlan": "plan",
    "Unchanged": "plan",
    "plan_patch": "plan",
    "RequirementsEdit": "rules",
    "edit_requirements": "rules",
    "SourceWheel": "wheel",
    "read_wheel": "wheel",
    "write_wheel": "writer",
}

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

if TYPE_CHECKING:
    from .api import patch_wheel, plan_wheel
    from .config import Config, Override, load_config, parse_config
    from .errors import ConfigError, InvalidWheel, OutputError, WheelpatchError
    from .plan import Change, PatchPlan, Unchanged, plan_patch
    from .rules import RequirementsEdit, edit_requirements
    from .wheel import SourceWheel, read_wheel
    from .writer import write_wheel


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wheelpatch' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
