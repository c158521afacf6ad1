"""A task's files as others receive them: a zip archive, and HTML with syntax highlighting
(Pygments, CSS classes styled by ``static/highlight.css``; nothing is fetched from elsewhere)."""

from __future__ import annotations

import io
import zipfile

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound

from agents import selectors
from agents.models import DevelopmentTask

_FORMATTER = HtmlFormatter(nowrap=True)
HIGHLIGHT_MAX_CHARS = 200_000


def artifacts_zip(task: DevelopmentTask) -> bytes:
    """Every artifact of ``task`` under ``task-<id>/`` in a zip archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for artifact in selectors.task_artifacts(task=task):
            archive.writestr(f"task-{task.id}/{artifact.path}", artifact.content)
    return buffer.getvalue()


def highlight_html(path: str, content: str) -> SafeString:
    """``content`` as HTML spans for the lexer of ``path``'s extension; escaped plain text when
    there is none or the file is too large to be worth it."""
    if len(content) > HIGHLIGHT_MAX_CHARS:
        return escape(content)
    try:
        lexer = get_lexer_for_filename(path, stripnl=False)
    except ClassNotFound:
        return escape(content)
    return mark_safe(highlight(content, lexer, _FORMATTER))  # noqa: S308 - Pygments escapes the source
