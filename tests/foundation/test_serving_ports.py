"""Each environment's serving ports come from the settings' `serving_port_base`: a second home on the same
machine takes another base, so that no deployment's URI reaches the other home's scoring servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.errors import InvalidInput
from mlyard.services.environments import defaults_for
from mlyard.settings import Settings


def ports(settings: Settings, name: str, index: int) -> list[int]:
    return list(defaults_for(settings, name, index)["serving"]["port_range"])


def test_the_default_ranges_and_another_base(tmp_path: Path) -> None:
    default = Settings(home=tmp_path)
    assert [ports(default, n, i) for i, n in enumerate(("dev", "test", "prod"))] == [
        [9100, 9199], [9200, 9299], [9300, 9399]]  # fmt: skip
    assert ports(default, "staging", 3) == [9700, 9799]
    other = Settings(home=tmp_path, serving_port_base=20000)
    assert ports(other, "dev", 0) == [20000, 20099] and ports(other, "prod", 2) == [20200, 20299]


def test_the_base_is_read_back_from_settings_json(tmp_path: Path) -> None:
    Settings(home=tmp_path, serving_port_base=12300).save()
    assert ports(Settings.load(tmp_path), "dev", 0) == [12300, 12399]


@pytest.mark.parametrize("base", [80, 65400])
def test_a_base_without_room_is_refused(tmp_path: Path, base: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        defaults_for(Settings(home=tmp_path, serving_port_base=base), "dev", 0)
    assert f"serving_port_base {base} in settings.json" in caught.value.message
