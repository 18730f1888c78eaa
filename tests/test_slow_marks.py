"""The ``slow`` mark selects something: every test that uses a fixture starting a server, a
cluster of processes or a build is marked at collection (tests/conftest.py), so
``pytest -m "not slow"`` (the quick loop) starts none of them."""

import re
from pathlib import Path

from .conftest import SLOW_FIXTURES


def test_every_test_using_a_slow_fixture_is_marked_slow(request):
    items = request.session.items
    assert request.node in items
    unmarked = [item.nodeid for item in items
                if SLOW_FIXTURES.keys() & set(item.fixturenames)
                and not item.get_closest_marker("slow")]
    assert not unmarked, unmarked


def test_every_slow_fixture_is_defined():
    """A fixture renamed without this list would silently stop marking its tests."""
    sources = "\n".join(p.read_text() for p in sorted(Path(__file__).parent.rglob("*.py")))
    for name in SLOW_FIXTURES:
        assert re.search(rf"@pytest\.fixture[^\n]*\n(?:@[^\n]*\n)*def {name}\(", sources), name
