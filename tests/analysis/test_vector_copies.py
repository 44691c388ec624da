"""The vendored vector files are verbatim copies of ../shared/vectors."""

from __future__ import annotations

import pytest

from tests.analysis._vectors import FILES, LOCAL, SHARED, load


@pytest.mark.parametrize("name", FILES)
def test_copy_is_verbatim(name: str) -> None:
    original = SHARED / name
    if not original.exists():
        pytest.skip(f"{original} is not beside this clone")
    assert (LOCAL / name).read_bytes() == original.read_bytes()


@pytest.mark.parametrize("name", FILES)
def test_copy_names_its_origin(name: str) -> None:
    source = load(name)["_source"]
    assert source["repo"] in ("growthbook/growthbook", "spotify/confidence")
