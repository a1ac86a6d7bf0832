from __future__ import annotations

import sys

from .cli.wheelpatch import main

sys.exit(main())
