"""Markdown and notebooks to HTML fragments, with the repository's links made site links.

Markdown goes through markdown-it-py (CommonMark, GitHub's tables and strikethrough, heading
anchors and task lists from mdit-py-plugins); a notebook through nbconvert's ``basic`` template,
its Markdown cells rendered by the same Markdown renderer so that both kinds of note link alike.
"""

from __future__ import annotations

import copy
import re
from functools import cache

from sandbox.site.links import SiteMap


@cache
def _markdown():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin
    from mdit_py_plugins.tasklists import tasklists_plugin

    md = MarkdownIt("commonmark", {"html": True, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(anchors_plugin, min_level=1, max_level=4)
    md.use(tasklists_plugin)
    return md


def _relink(tokens, sitemap: SiteMap, *, source: str, page: str) -> None:
    """Rewrite ``href`` and ``src`` in place; a link with no target becomes a plain ``span``."""
    for tok in tokens:
        if tok.children:
            _relink(tok.children, sitemap, source=source, page=page)
        if tok.type == "link_open":
            href = sitemap.rewrite(tok.attrGet("href") or "", source=source, page=page)
            if href is None:
                tok.attrs, tok.tag, tok.meta["dropped"] = {}, "span", True
            else:
                tok.attrSet("href", href)
        elif tok.type == "link_close":
            pass
        elif tok.type == "image":
            src = sitemap.rewrite(tok.attrGet("src") or "", source=source, page=page)
            if src is not None:
                tok.attrSet("src", src)
    # a dropped link's closing tag: the next link_close at the same nesting
    stack = []
    for tok in tokens:
        if tok.type == "link_open":
            stack.append(tok)
        elif tok.type == "link_close" and stack and stack.pop().meta.get("dropped"):
            tok.tag = "span"


def markdown(text: str, sitemap: SiteMap, *, source: str, page: str) -> tuple[str, str]:
    """``(html, title)``: ``text`` rendered, and its first level-1 heading as plain text."""
    md = _markdown()
    env: dict = {}
    tokens = md.parse(text, env)
    _relink(tokens, sitemap, source=source, page=page)
    title = ""
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag == "h1":
            title = "".join(c.content for c in tokens[i + 1].children or [])
            break
    return md.renderer.render(tokens, md.options, env), title


def notebook(nb, sitemap: SiteMap, *, source: str, page: str) -> tuple[str, str]:
    """``(html, title)`` of a notebook node, executed or not, as nbconvert's ``basic`` body.

    nbconvert renders the code cells and their outputs; each Markdown cell is replaced by a
    marker that nbconvert passes through as a paragraph, then by this module's rendering, so
    that notes and notebooks link alike (nbconvert sanitises raw HTML cells, which would
    escape it).
    """
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    title, rendered = "", {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            html, h1 = markdown(cell.source, sitemap, source=source, page=page)
            title = title or h1
            rendered[str(i)] = html
            cell.source = f"{_MARKER}{i}"
            cell.pop("attachments", None)
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True)
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    body, n = _MARKER_P.subn(lambda m: rendered[m.group(1)], body)
    if n != len(rendered):
        raise ValueError(f"{source}: {len(rendered) - n} Markdown cell(s) lost in the rendering")
    return body, title


_MARKER = "sandboxmarkdowncell"
_MARKER_P = re.compile(rf"<p>\s*{_MARKER}(\d+)\s*</p>")


def pygments_css() -> str:
    """The code-highlighting rules for nbconvert's ``highlight`` blocks."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="default").get_style_defs(".highlight")
