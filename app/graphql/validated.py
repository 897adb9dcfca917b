"""Validate each document text once: clients send the same few documents over and over.

graphql-core's validation visits the document once per rule (~30 rules); for the one-line ``ingestEvents`` mutation
that is ~4 ms, i.e. 4 µs per event of a 1000-event batch, every request. A document's validity depends only on its
text, the schema and the rules, so a text that passed once (with the same rules) passes again: it is remembered,
bounded, and validated no more. Only passes are remembered, keyed by the exact text, so an invalid document is still
validated every time and answered with its own errors and locations.

Strawberry's ``ValidationCache`` is not used: it keys on the parsed document, whose equality ignores whitespace kinds
(a document with a newline where another has a space compares equal), and would answer one with the other's error
locations; and its companion ``ParserCache`` raises syntax errors outside the hook that maps them to the API's errors.
"""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

MAX_DOCUMENTS = 256
_passed: dict[tuple[object, str, tuple[type, ...]], None] = {}  # insertion-ordered: the oldest is dropped first


class ValidatedDocuments(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        key = None if context.query is None else (context.schema, context.query, context.validation_rules)
        if key is not None and key in _passed:
            context.pre_execution_errors = []  # Strawberry then skips its validation
        yield
        if key is not None and context.pre_execution_errors == [] and key not in _passed:
            if len(_passed) >= MAX_DOCUMENTS:
                del _passed[next(iter(_passed))]
            _passed[key] = None
