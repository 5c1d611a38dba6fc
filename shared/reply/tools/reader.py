"""The main text of a web page, as a reader view finds it, on the standard library's ``html.parser``.

The rules are those of Readability (Mozilla's ``Readability.js``, which Firefox's reader view runs and
``readability-lxml`` ports), cut to what a model reading a page needs:

- Scripts, styles, forms' controls, ``nav``/``aside``/``footer`` and elements whose class or id says
  menu, sidebar, comment, share, advert… (``UNLIKELY``, unless ``MAYBE`` also matches) are dropped.
- Each paragraph of at least 25 characters scores 1, plus one per comma (``,，、``), plus one per 100
  characters (at most 3). Its parent gets the score, its grandparent half, each further ancestor (up to
  five levels) a third of it per level; an ancestor starts from what its tag says (``div`` +5, lists
  −3, headings −5) and what its class or id says (±25).
- A candidate's score is scaled by the share of its text that is not link text; the best candidate is
  the article, with its siblings that score at least a fifth as much, or are paragraphs of prose. When
  three of the next four score at least three quarters as much (the posts of a thread), the nearest
  ancestor of the best that holds three of them is the article.
- Inside it, lists, tables and blocks made mostly of links (related articles, tag clouds) are dropped.

readability-lxml needs lxml, 5 MB of the reply package for one tool; ``tests/test_reader.py`` checks
this module against it on pages of the kinds people send.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Dict, List, Optional, Union

SKIPPED = {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas", "button",
           "select", "textarea", "input", "nav", "aside", "footer", "form", "dialog", "head"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
        "wbr"}
BLOCKS = {"address", "article", "blockquote", "dd", "div", "dl", "dt", "figcaption", "figure", "h1", "h2", "h3",
          "h4", "h5", "h6", "header", "hr", "li", "main", "ol", "p", "pre", "section", "table", "tr", "ul",
          "caption", "tbody", "thead"}
CELLS, CELL_SEPARATOR = {"td", "th"}, " | "
# A start tag of the key closes an open element of these tags first (the parser does not do it for us).
CLOSES = {"p": {"p"}, "li": {"li", "p"}, "dt": {"dt", "dd", "p"}, "dd": {"dt", "dd", "p"}, "tr": {"tr", "td", "th"},
          "td": {"td", "th"}, "th": {"td", "th"}, "div": {"p"}, "ul": {"p"}, "ol": {"p"}, "table": {"p"},
          "h1": {"p"}, "h2": {"p"}, "h3": {"p"}, "h4": {"p"}, "h5": {"p"}, "h6": {"p"}, "pre": {"p"},
          "blockquote": {"p"}, "section": {"p"}}
UNLIKELY = re.compile(r"-ad-|ai2html|banner|breadcrumb|combx|comment|community|cover-wrap|disqus|extra|footer|"
                      r"gdpr|header|legends|menu|related|remark|replies|rss|shoutbox|sidebar|skyscraper|social|"
                      r"sponsor|supplemental|ad-break|agegate|pagination|pager|popup|yom-remote|share|"
                      r"recommend|copyright|login|subscribe|toolbar", re.I)
MAYBE = re.compile(r"and|article|body|column|content|main|shadow|post|entry|text", re.I)
POSITIVE = re.compile(r"article|body|content|entry|hentry|h-entry|main|page|pagination|post|text|blog|story",
                      re.I)
NEGATIVE = re.compile(r"-ad-|hidden|^hid$| hid$| hid |^hid |banner|combx|comment|com-|contact|foot|footer|"
                      r"footnote|gdpr|masthead|media|meta|outbrain|promo|related|scroll|share|shoutbox|sidebar|"
                      r"skyscraper|sponsor|shopping|tags|tool|widget", re.I)
UNLIKELY_ROLES = {"menu", "menubar", "complementary", "navigation", "alert", "alertdialog", "dialog"}
SCORED = {"p", "pre", "td", "blockquote", "section", "h2", "h3", "h4", "h5", "h6"}
TAG_SCORES = {"div": 5, "pre": 3, "td": 3, "blockquote": 3, "address": -3, "ol": -3, "ul": -3, "dl": -3,
              "dd": -3, "dt": -3, "li": -3, "form": -3, "h1": -5, "h2": -5, "h3": -5, "h4": -5, "h5": -5,
              "h6": -5, "th": -5}
COMMAS = re.compile("[,，、]")
SENTENCE_END = re.compile(r"[.。!！?？]$")
SPACES = re.compile(r"\s+")
TITLE_PARTS = re.compile(r"\s+[|\-–—_]\s+|_|\s+::\s+|\s+»\s+")
MIN_PARAGRAPH, LEVELS, TOP_CANDIDATES, MIN_ALIKE = 25, 5, 5, 3
MAX_DEPTH = 150  # far deeper than pages nest, well within Python's recursion limit


class Node:
    """An element: its tag, what its class and id say, its children (elements and text)."""

    __slots__ = ("tag", "label", "children", "parent", "score", "_text")

    def __init__(self, tag: str, label: str, parent: Optional["Node"]) -> None:
        self.tag, self.label, self.parent = tag, label, parent
        self.children: List[Union["Node", str]] = []
        self.score: Optional[float] = None
        self._text: Optional[str] = None

    def text(self) -> str:
        """The element's text, spaces collapsed (cached: scoring asks for it many times)."""
        if self._text is None:
            self._text = SPACES.sub(" ", "".join(c if isinstance(c, str) else c.text() for c in self.children)).strip()
        return self._text

    def elements(self) -> List["Node"]:
        return [child for child in self.children if isinstance(child, Node)]

    def link_density(self) -> float:
        length = len(self.text())
        if not length:
            return 0.0
        return sum(len(link.text()) for link in self.descendants("a")) / length

    def descendants(self, tag: Optional[str] = None) -> List["Node"]:
        found, stack = [], list(reversed(self.elements()))
        while stack:
            node = stack.pop()
            if tag is None or node.tag == tag:
                found.append(node)
            stack.extend(reversed(node.elements()))
        return found


class _TreeBuilder(HTMLParser):
    """A forgiving tree of the page's body: what is skipped never enters it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("body", "", None)
        self.open = self.root
        self.skipping: List[str] = []
        self.depth = 0
        self.title: List[str] = []
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: List) -> None:
        if tag == "title":
            self.in_title = True
        if self.skipping:
            if tag not in VOID:
                self.skipping.append(tag)
            return
        values: Dict[str, str] = {name: value or "" for name, value in attrs}
        label = f"{values.get('class', '')} {values.get('id', '')}".strip()
        unlikely = (UNLIKELY.search(label) and not MAYBE.search(label) and tag not in ("body", "article", "main")) \
            or values.get("role", "").lower() in UNLIKELY_ROLES or "hidden" in values \
            or "display:none" in values.get("style", "").replace(" ", "").lower()
        if tag in SKIPPED or unlikely:
            if tag not in VOID:
                self.skipping.append(tag)
            return
        if tag in ("html", "body"):
            return
        closes = CLOSES.get(tag, ())
        while self.open.tag in closes:
            self.open, self.depth = self.open.parent, self.depth - 1
        if self.depth >= MAX_DEPTH:  # a hostile page nesting without end: the rest joins the deepest element
            return
        node = Node(tag, label, self.open)
        self.open.children.append(node)
        if tag not in VOID:
            self.open, self.depth = node, self.depth + 1

    def handle_startendtag(self, tag: str, attrs: List) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if self.skipping:
            if tag in self.skipping:
                while self.skipping.pop() != tag:
                    pass
            return
        node: Optional[Node] = self.open
        closed = 1
        while node is not None and node.tag != tag:
            node, closed = node.parent, closed + 1
        if node is not None and node.parent is not None:
            self.open, self.depth = node.parent, self.depth - closed

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.skipping:
            self.open.children.append(data)


def _class_weight(node: Node) -> int:
    return (-25 if NEGATIVE.search(node.label) else 0) + (25 if POSITIVE.search(node.label) else 0)


def _is_paragraph(node: Node) -> bool:
    """A scored block, or a ``div`` holding only text and inline elements (Readability treats it as a p)."""
    if node.tag in SCORED:
        return True
    return node.tag == "div" and not any(child.tag in BLOCKS for child in node.descendants())


def _top_candidate(root: Node) -> Node:
    candidates: List[Node] = []
    for node in root.descendants():
        if not _is_paragraph(node):
            continue
        text = node.text()
        if len(text) < MIN_PARAGRAPH:
            continue
        points = 1 + len(COMMAS.findall(text)) + min(len(text) // 100, 3)
        ancestor, level = node.parent, 0
        while ancestor is not None and level < LEVELS:
            if ancestor.score is None:
                ancestor.score = TAG_SCORES.get(ancestor.tag, 0) + _class_weight(ancestor)
                candidates.append(ancestor)
            ancestor.score += points / (1 if level == 0 else 2 if level == 1 else level * 3)
            ancestor, level = ancestor.parent, level + 1
    if not candidates:
        return root
    for candidate in candidates:
        candidate.score = (candidate.score or 0) * (1 - candidate.link_density())
    best = sorted(candidates, key=lambda c: -(c.score or 0))[:TOP_CANDIDATES]
    top = best[0]
    alike = [c for c in best[1:] if (c.score or 0) >= 0.75 * (top.score or 0)]
    if len(alike) >= MIN_ALIKE:  # posts of a thread, sections of a page: their common ancestor is the article
        ancestor = top.parent
        while ancestor is not None:
            if sum(1 for other in alike if _inside(other, ancestor)) >= MIN_ALIKE:
                return ancestor
            ancestor = ancestor.parent
    return top


def _inside(node: Node, ancestor: Node) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False


def _with_siblings(top: Node) -> List[Node]:
    if top.parent is None:
        return [top]
    threshold = max(10.0, (top.score or 0) * 0.2)
    kept = []
    for sibling in top.parent.elements():
        if sibling is top:
            kept.append(sibling)
            continue
        text, density = sibling.text(), sibling.link_density()
        bonus = (top.score or 0) * 0.2 if sibling.label and sibling.label == top.label else 0
        prose = sibling.tag == "p" and ((len(text) > 80 and density < 0.25)
                                        or (0 < len(text) <= 80 and density == 0 and SENTENCE_END.search(text)))
        if prose or (sibling.score or 0) + bonus >= threshold:
            kept.append(sibling)
    return kept


def _is_clutter(node: Node) -> bool:
    """Inside the article: a list, table or block that is mostly links, or that says it is not content."""
    if node.tag in ("ul", "ol", "div", "table", "section", "dl", "header") and node.link_density() > 0.5:
        return True
    return node.tag != "body" and _class_weight(node) < 0 and node.tag not in ("p", "pre")


def _render(node: Node, lines: List[str], line: List[str], preformatted: bool = False) -> None:
    """Text into ``line``; a block element ends the line before and after it; cells of a row are joined."""
    for child in node.children:
        if isinstance(child, str):
            line.append(child if preformatted else SPACES.sub(" ", child))
            continue
        if child.tag == "br":
            line.append("\n")
            continue
        if _is_clutter(child):
            continue
        if child.tag in CELLS and "".join(line).strip():
            line.append(CELL_SEPARATOR)
        if child.tag == "pre" and not preformatted:  # code keeps its lines and indentation
            _flush(lines, line)
            code: List[str] = []
            _render(child, lines, code, True)
            lines.extend(part.rstrip() for part in "".join(code).strip("\n").split("\n"))
            continue
        block = child.tag in BLOCKS
        if block and not preformatted:
            _flush(lines, line)
        _render(child, lines, line, preformatted)
        if block and not preformatted:
            _flush(lines, line)


def _flush(lines: List[str], line: List[str]) -> None:
    for part in "".join(line).split("\n"):
        part = part.strip(CELL_SEPARATOR)  # a row whose last cell was a block
        if part:
            lines.append(part)
    line.clear()


def short_title(title: str, headings: List[str]) -> str:
    """The page title without the site's name: a heading of the page the title holds, else the title's first
    part between separators (``标题_网站``, ``Title | Site``) when that part says enough."""
    title = SPACES.sub(" ", title).strip()
    for heading in headings:
        if len(heading) >= 4 and heading in title:
            return heading
    parts = [part.strip() for part in TITLE_PARTS.split(title) if part.strip()]
    if len(parts) < 2:
        return title
    return parts[0] if len(parts[0].split()) >= 3 or len(parts[0]) >= 4 else title


def main_text(html: str) -> str:
    """The page's title and its main text, one paragraph per line."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    lines: List[str] = []
    for node in _with_siblings(_top_candidate(builder.root)):
        line: List[str] = []
        _render(node, lines, line)
        _flush(lines, line)
    headings = [node.text() for node in builder.root.descendants() if node.tag in ("h1", "h2", "h3")]
    title = short_title("".join(builder.title), headings)
    text = "\n".join(lines)
    return f"{title}\n\n{text}" if title else text
