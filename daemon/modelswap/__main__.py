"""`python -m modelswap`: the `modelswap` command."""

import sys

from modelswap.cli.main import main

sys.exit(main())
