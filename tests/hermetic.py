"""The environment every test subprocess that runs pip, uv, hatch or twine gets."""

from __future__ import annotations

import os

__all__ = ["hermetic_env"]


def hermetic_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any pip, uv, twine, virtualenv, Python or proxy setting:
    the machine's pip configuration (find-links, file:// indexes, a constraint file) must never
    reach pip, uv may only read local files, and only loopback servers are ever contacted."""
    dropped = ("PIP_", "UV_", "TWINE_", "HATCH_", "PYTHON", "VIRTUAL_ENV", "CONDA")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(dropped) and not key.lower().endswith("_proxy")
    }
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_NO_CACHE_DIR": "1",
            "UV_NO_CONFIG": "1",
            "UV_NO_CACHE": "1",
            "UV_OFFLINE": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "PYTHONNOUSERSITE": "1",
            "NO_PROXY": "*",
            "no_proxy": "*",
        }
    )
    env.update(extra)
    return env
