"""Which containerd image references a new build of an image replaces (no node needed)."""

from __future__ import annotations

from tests.cluster.realnode import stale_refs

LISTING = """REF TYPE DIGEST SIZE PLATFORMS LABELS
localhost/modelpack/model-server:new m.v2+json sha256:bbb 5.5 GiB linux/amd64 managed
localhost/modelpack/model-server:old m.v2+json sha256:aaa 5.5 GiB linux/amd64 managed
localhost/modelpack/pause:p1 m.v2+json sha256:ppp 1.4 MiB linux/amd64 managed
sha256:0a0a m.v2+json sha256:aaa 5.5 GiB linux/amd64 managed
sha256:0b0b m.v2+json sha256:bbb 5.5 GiB linux/amd64 managed
sha256:0p0p m.v2+json sha256:ppp 1.4 MiB linux/amd64 managed
"""


def test_the_old_tag_and_the_cri_id_reference_that_pins_it_are_both_stale() -> None:
    stale = stale_refs(LISTING, "localhost/modelpack/model-server", "localhost/modelpack/model-server:new")
    assert stale == ["localhost/modelpack/model-server:old", "sha256:0a0a"]


def test_nothing_is_stale_when_only_the_kept_tag_exists() -> None:
    only = "\n".join(line for line in LISTING.splitlines() if ":old" not in line and "0a0a" not in line)
    assert stale_refs(only, "localhost/modelpack/model-server", "localhost/modelpack/model-server:new") == []
