"""UIDs of the standard are written by name (``pydicom.uid``, ``pynetdicom.sop_class``), never
typed by hand: a mistyped digit would be a different, silently wrong UID."""

from __future__ import annotations

import ast
from pathlib import Path

from pydicom.uid import UID_dictionary

KLINIKA = Path(__file__).resolve().parents[1] / "klinika"


def hand_typed_uids(root: Path) -> list[str]:
    """``path:line: uid (name)`` for every string literal under ``root`` that is a UID
    pydicom's dictionary names."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                entry = UID_dictionary.get(node.value.strip())
                if entry is not None:
                    where = path.relative_to(root.parent)
                    found.append(f"{where}:{node.lineno}: {node.value} ({entry[4] or entry[0]})")
    return found


def test_no_uid_of_the_standard_is_typed_by_hand() -> None:
    found = hand_typed_uids(KLINIKA)
    assert not found, "use pydicom.uid / pynetdicom.sop_class names:\n" + "\n".join(found)


def test_the_scan_finds_a_hand_typed_uid(tmp_path: Path) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / "module.py").write_text('SYNTAX = "1.2.840.10008.1.2.4.50"\nOTHER = "1.2.3"\n')
    assert hand_typed_uids(package) == [
        "package/module.py:1: 1.2.840.10008.1.2.4.50 (JPEGBaseline8Bit)"
    ]
