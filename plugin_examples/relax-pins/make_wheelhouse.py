"""Build a small wheelhouse with an over-tight pin, so this example runs anywhere in a second.

legacyclient 1.4.0 pins ``requests==2.25.1`` and ``urllib3<1.27``; the wheelhouse offers only
newer releases (requests 2.32.3, which allows urllib3 2, and urllib3 2.2.3), so pip cannot install
legacyclient from it until the pins are patched. Usage:

    python make_wheelhouse.py [DIR]      # default: ./wheelhouse
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from standin import build


def main() -> None:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "wheelhouse")
    directory.mkdir(parents=True, exist_ok=True)
    wheels = [
        build(
            directory,
            "legacyclient",
            "1.4.0",
            ["requests==2.25.1", "urllib3<1.27,>=1.21.1", "idna<3,>=2.5"],
        ),
        build(directory, "requests", "2.32.3", ["urllib3<3,>=1.21.1", "idna<4,>=2.5"]),
        build(directory, "urllib3", "2.2.3"),
        build(directory, "idna", "3.7"),
    ]
    for wheel in wheels:
        print(wheel)


if __name__ == "__main__":
    main()
