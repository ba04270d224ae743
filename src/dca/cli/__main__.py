"""`python -m dca.cli ...`: the `dca` command."""

from . import main

raise SystemExit(main())
