"""A self-contained HTML report: one file, no external assets, plots embedded as base64 PNG.

Sections are added in order by whatever stages a run has (tokenizers, pretraining, fine-tuning, ...);
`save` writes the page atomically so a half-written report never replaces a good one.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from datetime import datetime, timezone

from llmlab.io import atomic_write_text

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.seg span { display: inline-block; margin: 1px; padding: 0 3px; border-radius: 3px; }
"""
_PALETTE = ("#fde2e2", "#e2f0fd", "#e5fde2", "#fdf6e2", "#efe2fd")


class Report:
    """An HTML page built section by section."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def section(self, title: str) -> None:
        self.parts.append(f"<h2>{html.escape(title)}</h2>")

    def text(self, paragraph: str) -> None:
        self.parts.append(f"<p>{html.escape(paragraph)}</p>")

    def pre(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """A table; numbers are right-aligned and floats shown with 4 significant digits."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def segmentation(self, label: str, tokens: Sequence[str]) -> None:
        """Tokens shown as alternating coloured boxes, so the boundaries are visible."""
        spans = "".join(
            f'<span style="background:{_PALETTE[i % len(_PALETTE)]}">{html.escape(t)}</span>'
            for i, t in enumerate(tokens)
        )
        self.parts.append(f'<p class="seg"><b>{html.escape(label)}</b> ({len(tokens)} tokens)<br>{spans}</p>')

    def figure(self, fig, caption: str) -> None:
        """Embed a matplotlib figure as a PNG data URI and close it."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        self.parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def render(self) -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
            f"<p>Generated {stamp}.</p>{''.join(self.parts)}</body></html>\n"
        )

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.render())


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"
