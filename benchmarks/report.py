"""A benchmark's Markdown table: written to the file asked for (if any) and printed.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     emit(["| a |", "|---|"], os.path.join(d, "t.md"))
    ...     open(os.path.join(d, "t.md")).read().count("\\n")
    | a |
    |---|
    <BLANKLINE>
    2
"""
from __future__ import annotations


def emit(lines: list, out: str | None) -> None:
    """``lines`` joined as one text, saved to ``out`` where given, and printed."""
    text = "\n".join(lines) + "\n"
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text)
