"""``python -m tlcore.cli``: the ``tl`` command (what ``torchrun -m tlcore.cli train ...`` runs on every process)."""

from tlcore.cli import main

raise SystemExit(main())
