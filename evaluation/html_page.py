"""The scaffolding of the toolkit's self-contained HTML pages (the report and the leaderboard):
the document around a page's body, images embedded as base64, and the script that marks a figure
that did not decode. No network, no other file."""

from __future__ import annotations

import base64
from html import escape

__all__ = ["FIGURE_CHECK_SCRIPT", "embedded_image", "figure", "html_document"]

# Once loaded, each figure records whether it decoded (data-rendered), for the browser tests and
# so that a broken figure is marked visibly (the page's style gives img.broken an outline).
FIGURE_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  document.querySelectorAll("img").forEach(function (img) {
    var ok = img.complete && img.naturalWidth > 0;
    img.dataset.rendered = ok ? "yes" : "no";
    if (!ok) { img.classList.add("broken"); }
  });
});
"""


def embedded_image(data: bytes, mime: str, alt: str) -> str:
    """An ``<img>`` holding ``data`` (``mime``, e.g. ``image/png``) as a data URL."""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:{mime};base64,{encoded}" alt="{escape(alt)}">'


def figure(png: bytes, alt: str, caption: str) -> str:
    """A PNG figure with its caption (HTML, inserted as given)."""
    return (
        f'<div class="figure">{embedded_image(png, "image/png", alt)}'
        f'<div class="caption">{caption}</div></div>'
    )


def html_document(title: str, style: str, body: str, script: str) -> str:
    """The whole page: ``body`` (HTML) under ``title`` (text, escaped), with ``style`` and
    ``script`` inline."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{style}</style></head><body>"
        f"{body}<script>{script}</script></body></html>"
    )
