"""HTML read as a reader sees it: the page's main content, laid out in paragraphs, with what a
browser hides left out.

Hidden means: `<script>`, `<style>`, `<template>` and the like; the `hidden` attribute;
`aria-hidden="true"`; an inline style or a simple stylesheet rule (`.x {display: none}`) with
`display: none`, `visibility: hidden` or `font-size: 0`. Navigation (`<nav>`,
`role="navigation"`, search boxes, `<footer>`) is left out too, and when the page marks its main
content (`<main>` or `role="main"`), only that is read. Permalink anchors ("¶") are dropped.

The result is plain text in the shape the sentence reader understands: headings as `# Title`,
one paragraph per line with a blank line between blocks, list items as "- " or "1. ", code kept
line by line inside ``` fences, table rows with cells joined by " | ".

    >>> html_to_text('<p>Shown <span style="display:none">hidden</span>text.</p>')[1]
    'Shown text.'
"""

from __future__ import annotations

import re
import warnings

_DROP = {
    "script",
    "style",
    "noscript",
    "template",
    "head",
    "svg",
    "iframe",
    "object",
    "embed",
    "canvas",
    "audio",
    "video",
    "map",
    "button",
    "select",
    "input",
    "textarea",
    "nav",
    "footer",
    "dialog",
}
_DROP_ROLES = {"navigation", "search", "contentinfo", "banner", "dialog", "alertdialog"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_BLOCKS = {
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "form",
    "header",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
    "caption",
    "center",
    "body",
    "html",
    *_HEADINGS,
}
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*(hidden|collapse)|font-size\s*:\s*0(?![.\d]*[1-9])"
    r"(\.0+)?\s*(px|pt|em|rem|%)?\s*(;|$|!)",
    re.I,
)
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_PERMALINK = {"¶", "§", "#", "🔗", "¶#"}


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML page."""
    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

    with (
        warnings.catch_warnings()
    ):  # XHTML, or a page that is just a URL, is read as HTML on purpose
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
    hidden_selectors = _hidden_selectors(" ".join(s.get_text() for s in soup.find_all("style")))
    # Last first, so a hidden tag inside a hidden tag goes before its parent: each is removed
    # once, and no check of "already removed" is needed (bs4's costs a search of the subtree).
    hidden = [t for t in soup.find_all(True) if _hidden(t, hidden_selectors) or _permalink(t)]
    for tag in reversed(hidden):
        tag.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.body or soup
    writer = _Writer()
    writer.walk(root)
    return title, writer.text()


def _hidden_selectors(css: str) -> list[tuple[str, str]]:
    """(kind, name) for stylesheet rules that hide: ("class", "x"), ("id", "y"), ("tag", "z")."""
    out = []
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    for selectors, body in _RULE.findall(css):
        if not _HIDDEN_STYLE.search(body + ";"):
            continue
        for sel in selectors.split(","):
            sel = sel.strip()
            if re.fullmatch(r"\.[\w-]+", sel):
                out.append(("class", sel[1:]))
            elif re.fullmatch(r"#[\w-]+", sel):
                out.append(("id", sel[1:]))
            elif re.fullmatch(r"[a-zA-Z][\w-]*", sel):
                out.append(("tag", sel.lower()))
    return out


def _hidden(tag, selectors: list[tuple[str, str]]) -> bool:
    if tag.name in _DROP or tag.has_attr("hidden"):
        return True
    attrs = tag.attrs or {}
    if str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if str(attrs.get("role", "")).lower() in _DROP_ROLES:
        return True
    if _HIDDEN_STYLE.search(str(attrs.get("style", "")) + ";"):
        return True
    classes = attrs.get("class") or []
    for kind, name in selectors:
        if (
            (kind == "class" and name in classes)
            or (kind == "id" and attrs.get("id") == name)
            or (kind == "tag" and tag.name == name)
        ):
            return True
    return False


def _permalink(tag) -> bool:
    """A "¶" link beside a heading: it points at the heading and says nothing."""
    return (
        tag.name == "a"
        and str(tag.get("href", "")).startswith("#")
        and tag.get_text().strip() in _PERMALINK
    )


class _Writer:
    """Walks the tree, collecting blocks of inline text."""

    def __init__(self):
        self.blocks: list[str] = []
        self.line: list[str] = []
        self.lists: list[list] = []  # per open list: [ordered, next number]
        self.term = -1  # the block of the last <dt>, which its <dd> describes

    def text(self) -> str:
        self._end_block()
        return "\n\n".join(self.blocks)

    def _end_block(self, prefix: str = "") -> None:
        line = " ".join("".join(self.line).split())
        if line:
            self.blocks.append(prefix + line)
        self.line = []

    def _describe(self, first: int) -> None:
        """A <dd> right after its <dt> reads as a definition, the term over its indented
        description (as a man page prints one), so the two are one unit; a <dd> in several
        paragraphs keeps the rest as paragraphs."""
        if self.term == first - 1 and first < len(self.blocks) and "\n" not in self.blocks[first]:
            self.blocks[self.term] = f"  {self.blocks[self.term]}\n      {self.blocks[first]}"
            del self.blocks[first]
        self.term = -1

    def walk(self, root) -> None:
        """Depth first, without recursion: pages nest tags tens of thousands deep."""
        from bs4 import Comment, NavigableString, Tag

        stack: list = [("children", root)]
        while stack:
            action, node = stack.pop()
            if action == "end":
                node()
                continue
            if action == "children":
                for child in reversed(list(node.children)):
                    stack.append(("node", child))
                continue
            if isinstance(node, Comment):
                continue
            if isinstance(node, NavigableString):
                self.line.append(str(node))
            elif isinstance(node, Tag):
                self._tag(node, stack)

    def _tag(self, tag, stack: list) -> None:
        name = tag.name
        if name == "br":
            self.line.append(" ")
            self._end_block()
            return
        if name == "pre":
            self._end_block()
            code = tag.get_text().strip("\n")
            if code.strip():
                self.blocks.append("```\n" + code.rstrip() + "\n```")
            return
        if name == "tr":
            self._end_block()
            cells = [" ".join(c.get_text(" ").split()) for c in tag.find_all(["td", "th"])]
            row = " | ".join(c for c in cells if c)
            if row:
                self.blocks.append(row)
            return
        if name in _HEADINGS:
            level = _HEADINGS[name]
            after = lambda: self._end_block("#" * level + " ")  # noqa: E731
        elif name in ("ul", "ol"):
            self.lists.append([name == "ol", _start(tag) if name == "ol" else 0])

            def after():
                self._end_block()
                self.lists.pop()
        elif name == "dt":

            def after():
                self._end_block()
                self.term = len(self.blocks) - 1
        elif name == "dd":
            first = len(self.blocks)

            def after():
                self._end_block()
                self._describe(first)
        elif name == "li":

            def after():
                prefix = "- "
                if self.lists and self.lists[-1][0]:
                    prefix = f"{self.lists[-1][1]}. "
                    self.lists[-1][1] += 1
                self._end_block(prefix)
        elif name in _BLOCKS:
            after = self._end_block
        else:
            stack.append(("children", tag))
            return
        self._end_block()
        stack.append(("end", after))
        stack.append(("children", tag))


def _start(tag) -> int:
    try:
        return int(tag.get("start", 1) or 1)
    except (TypeError, ValueError):
        return 1
