"""README's code examples run as written."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- tests/test_readme.py runs the next code block -->"


def marked_blocks() -> list[str]:
    """The ```python blocks that follow a MARKER line."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for part in text.split(MARKER)[1:]:
        head, _, rest = part.partition("```python\n")
        assert not head.strip(), "the marker must be right above a ```python block"
        blocks.append(rest.partition("\n```")[0])
    return blocks


def test_the_extension_protocols_example_runs(capsys):
    (code,) = marked_blocks()
    scope: dict = {"__name__": "readme"}
    exec(compile(code, str(README), "exec"), scope)
    state = scope["state"]
    assert state.iterations_done == {"a": 1, "b": 1}
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [f"a path {i} <- 0: accepted=True" for i in (1, 2, 3)]
    assert len(lines) == 2 * 3 + 1
