"""docs/architecture.md's rooms table says what the import-linter contracts check: the same
rooms, in the same layers, each allowed exactly the rooms below it; and the rooms kept free
of the wire are the ones the second contract names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import klinika

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `(?P<room>[a-z0-9_]+)` \| (?P<layer>\d+) \| .* \| (?P<may>[^|]+) \|$")


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return found


def table() -> dict[str, tuple[int, set[str]]]:
    rows: dict[str, tuple[int, set[str]]] = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        if match := ROW.match(line):
            may = match["may"].strip()
            rooms = set() if may == "—" else {name.strip() for name in may.split(",")}
            rows[match["room"]] = (int(match["layer"]), rooms)
    return rows


def test_the_may_import_column_is_the_layers_contract() -> None:
    (layered,) = [c for c in contracts() if c["type"] == "layers"]
    assert layered["containers"] == ["klinika"] and layered["exhaustive"] is True
    layers = [[n.strip() for n in re.split(r"[|:]", layer)] for layer in layered["layers"]]
    expected = {
        room: (number, {r for lower in layers[number:] for r in lower})
        for number, layer in enumerate(layers, start=1)
        for room in layer
    }
    assert table() == expected


def test_every_package_and_module_of_klinika_is_a_room_of_the_table() -> None:
    package = Path(klinika.__file__).parent
    children = {
        p.stem if p.is_file() else p.name
        for p in package.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert children == set(table())


def test_the_rooms_without_the_wire_are_the_forbidden_contracts_sources() -> None:
    (forbidden,) = [c for c in contracts() if c["type"] == "forbidden"]
    text = (ROOT / "docs" / "architecture.md").read_text()
    sentence = re.search(r"out of the core rooms \(([^)]*)\)", text)
    assert sentence is not None
    documented = {name.strip(" `\n") for name in sentence[1].split(",")}
    assert {f"klinika.{name}" for name in documented} == set(forbidden["source_modules"])
