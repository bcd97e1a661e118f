"""pytest glue over tests/fixturelib.py.

Fixtures:
  fixture_matrix     (session) every selected fixture, built by scripts/fixtures.sh on first use.
  fixture_tag        parametrized over the selected tags (GOMAP_TAGS restricts; ids are the tags).
  classic_tag / swiss_tag   the same, only tags of that map implementation.
  fixture            the matrix row of the parametrized tag (binary, core, truth, impl, ...); a test
                     that asks only for `fixture` or `truth` is parametrized over every tag.
  truth              that row's truth.json (without the 1M-entry bigMap; use fixturelib.load_truth(..., big=True)).
Helper: fixturelib.LiveFixture(tag) for a running process.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixturelib  # noqa: E402


def _tags(impl=None):
    try:
        return fixturelib.all_tags(impl)
    except fixturelib.FixturesMissing as e:
        raise pytest.UsageError(str(e))


_TAG_ARGS = (("fixture_tag", None), ("classic_tag", "classic"), ("swiss_tag", "swiss"))


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if ("fixture" in names or "truth" in names) and not any(n in names for n, _ in _TAG_ARGS):
        names.append("fixture_tag")  # a test asking only for `fixture`/`truth` runs over every tag
    for name, impl in _TAG_ARGS:
        if name in metafunc.fixturenames:
            tags = _tags(impl)
            metafunc.parametrize(name, tags, ids=tags)


@pytest.fixture(scope="session")
def fixture_matrix():
    try:
        rows = fixturelib.ensure_matrix()
    except (fixturelib.FixturesMissing, OSError) as e:
        pytest.fail("gomap fixtures unavailable: %s" % e, pytrace=False)
    return {r["tag"]: r for r in rows}


def _row(request, fixture_matrix):
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    for name, _ in _TAG_ARGS:
        if name in params:
            return fixture_matrix[params[name]]
    raise pytest.UsageError("the `fixture` fixture needs fixture_tag, classic_tag or swiss_tag")


@pytest.fixture
def fixture(request, fixture_matrix):
    return _row(request, fixture_matrix)


@pytest.fixture
def truth(fixture):
    return fixturelib.load_truth(fixture["truth"])
