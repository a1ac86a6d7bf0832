from __future__ import annotations

import sys

from .cli.launch import main

sys.exit(main())
