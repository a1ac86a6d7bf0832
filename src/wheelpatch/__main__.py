from __future__ import annotations

from .cli.launch import console

console()
