"""The shipped price table and the shapes it travels in (file, ConfigMap)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelpack.pricing import (
    CONFIGMAP_KEY,
    PriceError,
    default_price_table,
    from_configmap,
    load_price_table,
    to_configmap,
)

REQUIRED_FAMILIES = {
    "c7g": "graviton",
    "c6i": "x86",
    "c5": "x86",
    "inf2": "inferentia",
    "inf1": "inferentia",
    "g5": "gpu",
}


def test_default_table_covers_every_family_with_source_and_date() -> None:
    table = default_price_table()
    assert table.currency == "USD"
    assert table.region == "us-east-1"
    assert "aws.amazon.com" in table.source
    assert table.last_checked
    # Every shipped price was compared with Karpenter's AWS Price List snapshot named in `source` (see the file header).
    assert table.verified is True
    assert "zz_generated.pricing_aws.go" in table.source
    for family, compute in REQUIRED_FAMILIES.items():
        assert table.families[family] == compute
        members = [t for t in table.instances if table.family_of(t) == family]
        assert len(members) >= 4, family
    # Every instance belongs to a declared family; accelerated ones name their device-plugin resource.
    for name, price in table.instances.items():
        assert table.compute_of(name) is not None, name
        if table.compute_of(name) == "inferentia":
            assert price.accelerator_resource == "aws.amazon.com/neuron"
        if table.compute_of(name) == "gpu":
            assert price.accelerator_resource == "nvidia.com/gpu"
    # Within a family, the price grows with the size.
    c7g = sorted((p.vcpu, p.hourly) for t, p in table.instances.items() if t.startswith("c7g."))
    assert [h for _, h in c7g] == sorted(h for _, h in c7g)
    assert "unverified" not in table.describe_source()


def test_configmap_round_trip() -> None:
    table = default_price_table()
    cm = to_configmap(table, "modelpack-pricing", "modelpack-system")
    assert cm["kind"] == "ConfigMap"
    assert set(cm["data"]) == {CONFIGMAP_KEY}
    assert from_configmap(cm) == table


def test_file_and_helm_value_share_the_shape(tmp_path: Path) -> None:
    # A Helm value `pricing:` holding the same mapping, dumped to a file, loads as the same table.
    table = default_price_table()
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump({"pricing": table.to_dict()}["pricing"]))
    assert load_price_table(path) == table


def test_configmap_without_key_is_named() -> None:
    cm = {"metadata": {"name": "p", "namespace": "ns"}, "data": {"other": "x"}}
    with pytest.raises(PriceError, match=r"ConfigMap ns/p: no data key 'prices.yaml'"):
        from_configmap(cm)


def test_bad_price_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "region": "r",
                "source": "s",
                "lastChecked": "d",
                "instances": {"c7g.large": {"hourly": -1, "vcpu": 2, "memoryGib": 4}},
            }
        )
    )
    with pytest.raises(PriceError, match=r"instances.c7g.large.hourly: Input should be greater than 0"):
        load_price_table(path)


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "region: r\nsource: s\nlastChecked: d\nprice: 1\ninstances: {a.b: {hourly: 1, vcpu: 1, memoryGib: 1}}\n"
    )
    with pytest.raises(PriceError, match="price: Extra inputs are not permitted"):
        load_price_table(path)


def test_accelerators_need_a_resource_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "region: r\nsource: s\nlastChecked: d\n"
        "instances: {inf2.xlarge: {hourly: 1, vcpu: 4, memoryGib: 16, accelerators: 1}}\n"
    )
    with pytest.raises(PriceError, match="acceleratorResource is required when accelerators is set"):
        load_price_table(path)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(PriceError, match=r"nope.yaml: no such file"):
        load_price_table(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("region: [unclosed\n")
    with pytest.raises(PriceError, match=r"bad.yaml: not valid YAML"):
        load_price_table(bad)
    bad.write_text("- a list\n")
    with pytest.raises(PriceError, match="expected a mapping with region, source, lastChecked and instances"):
        load_price_table(bad)
