"""Reading rendered pages in tests the way a person reads them: by field, list and heading."""

from __future__ import annotations

from typing import Any

import lxml.html


def page(response: Any) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(response.content.decode())


def text_of(element: lxml.html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def texts(doc: lxml.html.HtmlElement, xpath: str) -> list[str]:
    return [text_of(el) for el in doc.xpath(xpath)]


def field_errors(doc: lxml.html.HtmlElement, name: str) -> list[str]:
    """Errors shown inside the form field that holds the input called ``name``."""
    return texts(
        doc,
        f'//*[contains(concat(" ", @class, " "), " field ")][.//*[@name="{name}"]]//*[@class="field-error"]',
    )


def form_errors(doc: lxml.html.HtmlElement) -> list[str]:
    """Errors shown at the top of a form (not tied to one field)."""
    return texts(doc, '//form//*[@role="alert"]/p')


def input_value(doc: lxml.html.HtmlElement, name: str) -> str | None:
    found = doc.xpath(f'//input[@name="{name}"]')
    return found[0].get("value") if found else None


def messages(doc: lxml.html.HtmlElement) -> list[str]:
    return texts(doc, '//ul[@class="messages"]/li')
