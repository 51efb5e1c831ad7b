"""The house's size rules: no module over 400 lines, no function over 60 lines without a one-line reason.

A long function says why on the line above its `def` (or its first decorator): `# long: <reason>`.
Prints each breach and exits 1 when there is one:

    .venv/bin/python tools/code_shape.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("rai", "raid", "raiserver", "raitui", "keygen")
MAX_MODULE = 400
MAX_FUNCTION = 60
REASON = "# long:"


def breaches(root: Path) -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            lines = text.splitlines()
            rel = path.relative_to(root)
            if len(lines) > MAX_MODULE:
                out.append(f"{rel}: {len(lines)} lines (at most {MAX_MODULE})")
            for node in ast.walk(ast.parse(text)):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                said = lines[first - 2].strip().startswith(REASON) if first >= 2 else False
                if length > MAX_FUNCTION and not said:
                    out.append(f"{rel}:{node.lineno}: {node.name} is {length} lines (at most {MAX_FUNCTION}, "
                               f"or say why above it: `{REASON} ...`)")
    return out


def main() -> int:
    found = breaches(Path(__file__).resolve().parent.parent)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
