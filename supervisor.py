"""Worker-Sync supervisor entry point.

``python supervisor.py --config FILE`` is the same as ``worker-sync run --config FILE``: it is
what ``ray job submit --working-dir . -- python supervisor.py --config FILE`` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from actors.cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(["run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
