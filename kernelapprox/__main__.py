"""``python -m kernelapprox`` is the ``kernelapprox`` command."""

from kernelapprox.cli import main

raise SystemExit(main())
