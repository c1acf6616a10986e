"""One document, two renderings: `index.html`, a single offline file (its images inline, no script,
nothing fetched), and `report.md`, GitHub-flavoured Markdown for a pull-request comment, its images
beside it under relative links."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

Cell = str | tuple[str, str]  # text, or (text, link)


@dataclass
class Document:
    """Blocks in order: headings, paragraphs, tables and rows of images (by file name)."""

    title: str
    blocks: list[tuple] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # file name (relative) -> PNG
    summary: list[str] = field(default_factory=list)  # the lines printed when it is written

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def paragraph(self, *parts: Cell) -> None:
        self.blocks.append(("paragraph", parts))

    def table(self, head: list[str], rows: list[list[Cell]]) -> None:
        self.blocks.append(("table", head, rows))

    def pictures(self, shown: list[tuple[str, str, bytes]]) -> None:
        """A row of (caption, file name, PNG) pictures."""
        for _, name, png in shown:
            self.images[name] = png
        self.blocks.append(("pictures", [(caption, name) for caption, name, _ in shown]))


def _md_text(cell: Cell) -> str:
    text, link = (cell, None) if isinstance(cell, str) else cell
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"[{text}]({link})" if link else text


def markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            lines += [f"## {block[1]}", ""]
        elif kind == "paragraph":
            lines += ["".join(_md_text(p) for p in block[1]), ""]
        elif kind == "table":
            head, rows = block[1], block[2]
            lines.append("| " + " | ".join(_md_text(h) for h in head) + " |")
            lines.append("|" + "|".join(" --- " for _ in head) + "|")
            lines += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "pictures":
            shown = block[1]
            lines.append("| " + " | ".join(_md_text(c) for c, _ in shown) + " |")
            lines.append("|" + "|".join(" --- " for _ in shown) + "|")
            lines.append("| " + " | ".join(f"![{c}]({n})" for c, n in shown) + " |")
            lines.append("")
    return "\n".join(lines)


def _html_text(cell: Cell) -> str:
    """Escaped, with Markdown's `code` spans as <code>."""
    text, link = (cell, None) if isinstance(cell, str) else cell
    shown = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    return f'<a href="{html.escape(link)}">{shown}</a>' if link else shown


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figure img { max-width: 440px; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; }
"""


def page(doc: Document) -> str:
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(doc.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(doc.title)}</h1>",
    ]
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            parts.append(f"<h2>{html.escape(block[1])}</h2>")
        elif kind == "paragraph":
            parts.append("<p>" + "".join(_html_text(p) for p in block[1]) + "</p>")
        elif kind == "table":
            head, rows = block[1], block[2]
            parts.append("<table><tr>" + "".join(f"<th>{_html_text(h)}</th>" for h in head))
            parts += ["<tr>" + "".join(f"<td>{_html_text(c)}</td>" for c in r) for r in rows]
            parts.append("</table>")
        elif kind == "pictures":
            parts.append("<div>")
            for caption, name in block[1]:
                data = base64.b64encode(doc.images[name]).decode("ascii")
                parts.append(
                    f'<figure><img alt="{html.escape(caption)}" data-file="{html.escape(name)}" '
                    f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
                    "</figcaption></figure>"
                )
            parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write(doc: Document, folder: Path) -> None:
    """index.html, report.md and the Markdown's images, into `folder` (a staging folder)."""
    (folder / "index.html").write_text(page(doc), encoding="utf-8")
    (folder / "report.md").write_text(markdown(doc), encoding="utf-8")
    for name, png in doc.images.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(png)
