"""Suite-wide settings: Hypothesis runs derandomized (the same examples on every run, so
CI is reproducible); ``fuzz/run.py`` is where random exploration happens. Set
``PYTGT_HYPOTHESIS_RANDOM=1`` to explore with fresh examples from the test suite too.
The ``ceph`` and ``rbd_image`` fixtures (tests/ceph/cluster.py) are registered here."""

from __future__ import annotations

import os

from hypothesis import settings

# One throwaway Ceph cluster per session for every directory that asks for it
# (tests/ceph, and tests/guest's kernel initiator in front of RBD gateways).
from tests.ceph.cluster import ceph, rbd_image  # noqa: F401

settings.register_profile("pytgt-ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("pytgt-random", database=None, print_blob=True)
settings.load_profile("pytgt-random" if os.environ.get("PYTGT_HYPOTHESIS_RANDOM") else
                      "pytgt-ci")
