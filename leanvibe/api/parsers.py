"""JSON parser that turns every way a body can fail to parse into a 400."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            # json's C scanner recurses per nesting level: absurd depth is malformed input.
            raise ParseError("JSON parse error - nested too deeply.") from exc
