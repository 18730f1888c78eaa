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


def test_the_tests_of_an_xdist_group_are_sent_to_one_worker(request):
    """``--dist loadgroup`` sends the tests of one ``xdist_group`` (those sharing the
    deployments' server, the docs build, the installed wheel) to one worker only if xdist could
    tag their node ids with the group. Under pytest 9.2 it cannot (pytest-xdist issue 1386):
    the groups were split, and both workers started the whole deployments stack (PostgreSQL,
    the server with its UI, the served deployments). pyproject.toml keeps pytest below 9.2."""
    if not getattr(request.config.option, "loadgroup", False):
        return  # not a pytest-xdist worker with --dist loadgroup: nothing is grouped
    grouped = {item.nodeid: item.get_closest_marker("xdist_group").args[0]
               for item in request.session.items if item.get_closest_marker("xdist_group")}
    untagged = [nodeid for nodeid, group in grouped.items()
                if not nodeid.endswith("@" + group)]
    assert not untagged, untagged[:5]
