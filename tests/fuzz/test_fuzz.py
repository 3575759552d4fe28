"""Each fuzz target for a bounded number of examples (``python -m fuzz.run`` runs longer).

``PYTGT_FUZZ_EXAMPLES`` raises the per-target count (default 50).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz.strategies import STRATEGIES, seeds
from fuzz.targets import TARGETS

EXAMPLES = int(os.environ.get("PYTGT_FUZZ_EXAMPLES", "50"))


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)  # every rejection is logged: too much for a fuzz run
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_corpus_seeds(name: str) -> None:
    for seed in seeds(name):
        TARGETS[name](seed)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name: str) -> None:
    fn = TARGETS[name]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(STRATEGIES[name])
    def run(data: bytes) -> None:
        fn(data)

    run()


def test_corpus_is_there() -> None:
    for name in ("pdu", "connection", "login", "cdb"):
        assert seeds(name), f"fuzz/corpus has no seeds for {name} (python -m fuzz.capture)"
