"""Markdown from users, rendered to HTML a page can include.

Markdown passes raw HTML through, so its output is never trusted: nh3 (the Rust
sanitizer ammonia) keeps only the tags below, drops every other attribute, and keeps a
link only when it points to http, https or mailto.
"""

from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

ALLOWED_TAGS = {
    "p", "br", "em", "strong", "code", "pre", "ul", "ol", "li", "blockquote", "a",
    "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "hr",
}
ALLOWED_ATTRIBUTES = {"a": {"href"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "nofollow noopener"


def _only_absolute_links(tag, attribute, value):
    # nh3 checks the scheme of absolute URLs but lets relative ones through; a comment
    # has no business linking into the app's own POST endpoints or to "//elsewhere".
    if tag == "a" and attribute == "href":
        return value if urlsplit(value).scheme.lower() in URL_SCHEMES else None
    return value


class _DemoteHeadings(Treeprocessor):
    """A comment sits under the page's own h1/h2: its "# Title" becomes an h3."""

    def run(self, root: Element) -> None:
        for element in root.iter():
            if element.tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                element.tag = f"h{min(6, int(element.tag[1]) + 2)}"


class _DemoteHeadingsExtension(Extension):
    def extendMarkdown(self, md):  # noqa: N802 (Markdown's API)
        md.treeprocessors.register(_DemoteHeadings(md), "demote_headings", 5)


def render_markdown(text: str) -> SafeString:
    """Markdown to sanitized HTML; raw HTML in the input does not survive."""
    html = markdown.markdown(
        text or "", extensions=["fenced_code", "tables", "sane_lists", _DemoteHeadingsExtension()]
    )
    clean = nh3.clean(
        html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
        attribute_filter=_only_absolute_links, link_rel=LINK_REL,
    )
    return mark_safe(clean)  # noqa: S308 (sanitized just above)
