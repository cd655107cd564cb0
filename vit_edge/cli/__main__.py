"""`python -m vit_edge.cli`."""
from vit_edge.cli import main

raise SystemExit(main())
