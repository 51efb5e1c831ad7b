"""`python -m raiserver`: the same as the `rai-server` command."""

from raiserver.cli import main

main()
