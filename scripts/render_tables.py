#!/usr/bin/env python
"""Render a ``table.json`` written by ``reproduce`` as the markdown of docs/model.md.

Prints the table (the same as ``reproduce``'s ``table.md``) with its command, machine, CPU time
and convergence; with ``--into FILE --marker NAME`` it replaces the text between the lines
``<!-- NAME -->`` and ``<!-- /NAME -->`` of FILE instead (docs/model.md holds the markers
``table5`` and ``table7``):

    python scripts/render_tables.py docs/tables/table5.json --into docs/model.md --marker table5
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from baseline_algorithm.reproduce import cpu_hours, markdown_table, row_name


def render(document: dict) -> str:
    """The markdown of one ``table.json`` document."""
    rows = document["rows"]
    unconverged = [
        row_name(row["variant"], row["ablation"])
        for row in rows
        if False in row.get("converged", [])
    ]
    lines = [
        markdown_table(rows, document["test_images"], document["resamples"]),
        "",
        f"Command: `{document['command']}`",
        f"Machine: {document['machine']}",
        f"CPU time: {cpu_hours(document)}",
        "Not converged (a seed's best epoch is its last): "
        + (", ".join(unconverged) if unconverged else "none"),
    ]
    return "\n".join(lines)


def replace_marked(text: str, marker: str, content: str) -> str:
    """``text`` with the lines between ``<!-- marker -->`` and ``<!-- /marker -->`` replaced."""
    pattern = re.compile(
        rf"(<!-- {re.escape(marker)} -->\n).*?(<!-- /{re.escape(marker)} -->)", re.DOTALL
    )
    if not pattern.search(text):
        raise SystemExit(f"render_tables: no <!-- {marker} --> ... <!-- /{marker} --> block")
    return pattern.sub(lambda match: match[1] + content + "\n" + match[2], text, count=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, help="a table.json")
    parser.add_argument("--into", type=Path, default=None, help="markdown file to update")
    parser.add_argument("--marker", default=None, help="name of the block to replace")
    args = parser.parse_args(argv)
    content = render(json.loads(args.table.read_text()))
    if args.into is None:
        sys.stdout.write(content + "\n")
        return
    if not args.marker:
        parser.error("--into needs --marker")
    args.into.write_text(replace_marked(args.into.read_text(), args.marker, content))


if __name__ == "__main__":
    main()
