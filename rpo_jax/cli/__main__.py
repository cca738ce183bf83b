"""``python -m rpo_jax.cli ARGS``: the same as ``rpo-jax ARGS``."""

import sys

from rpo_jax.cli import main

sys.exit(main())
