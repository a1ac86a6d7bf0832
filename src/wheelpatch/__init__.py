"""wheelpatch: change the dependency metadata and local version label of existing wheels.

The public names are loaded on first use, so that the command line can start hashing a wheel
before the rest of the package (and packaging) is imported.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing alone takes 8 ms to import, before the hash can start

__version__ = "0.1.0"

_EXPORTS = {
    "patch_wheel": "patch.api",
    "plan_wheel": "patch.api",
    "Config": "rules.config",
    "Override": "rules.config",
    "load_config": "rules.config",
    "parse_config": "rules.config",
    "ConfigError": "errors",
    "InvalidWheel": "errors",
    "OutputError": "errors",
    "WheelpatchError": "errors",
    "Change": "patch.plan",
    "PatchPlan": "patch.plan",
    "Unchanged": "patch.plan",
    "plan_patch": "patch.plan",
    "RequirementsEdit": "rules.requirements",
    "edit_requirements": "rules.requirements",
    "SourceWheel": "wheel.source_wheel",
    "read_wheel": "wheel.source_wheel",
    "write_wheel": "patch.writer",
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
    from typing import Any

    from .errors import ConfigError, InvalidWheel, OutputError, WheelpatchError
    from .patch.api import patch_wheel, plan_wheel
    from .patch.plan import Change, PatchPlan, Unchanged, plan_patch
    from .patch.writer import write_wheel
    from .rules.config import Config, Override, load_config, parse_config
    from .rules.requirements import RequirementsEdit, edit_requirements
    from .wheel.source_wheel import SourceWheel, read_wheel


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wheelpatch' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
