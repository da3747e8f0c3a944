"""One value per row, chosen by the row's key, for an ``UPDATE`` of many rows at once.

``ValueByKey("run_id", {run: value, ...}, field)`` compiles to
``CASE "run_id" WHEN %s THEN %s ... END``: what
``Case(*(When(run_id=run, then=Value(value)) ...))`` says, without a lookup per
row. Django builds, resolves and compiles a ``Q`` for each ``When``: about 0.2 ms a
row, 22 ms for a hundred runs whose answers began together. The relay worker makes
that write on its database thread, which shares the interpreter with the streams,
so those milliseconds were added to the first tokens of every answer then starting.
A simple ``CASE`` is standard SQL (PostgreSQL, SQLite, MySQL, Oracle).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Expression, F, Field, Value
from django.db.models.sql.compiler import SQLCompiler


class ValueByKey(Expression):
    """``CASE <key> WHEN <k> THEN <v> ... END`` over ``values`` (``NULL`` for others)."""

    def __init__(self, key: str, values: Mapping[Any, Any], output_field: Field[Any, Any]) -> None:
        if not values:
            raise ValueError("ValueByKey needs at least one value")
        super().__init__(output_field=output_field)
        self.key: Any = F(key)
        self.values = dict(values)

    def resolve_expression(
        self,
        query: Any = None,
        allow_joins: bool = True,
        reuse: Any = None,
        summarize: bool = False,
        for_save: bool = False,
    ) -> ValueByKey:
        resolved: ValueByKey = self.copy()
        resolved.key = self.key.resolve_expression(query, allow_joins, reuse, summarize, for_save)
        return resolved

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[str | int, ...]]:
        key_sql, key_params = compiler.compile(self.key)
        key_field = self.key.output_field
        params: list[str | int] = list(key_params)
        branches = []
        for key, value in self.values.items():
            when_sql, when_params = compiler.compile(Value(key, output_field=key_field))
            then_sql, then_params = compiler.compile(Value(value, output_field=self.output_field))
            branches.append(f"WHEN {when_sql} THEN {then_sql}")
            params.extend(when_params)
            params.extend(then_params)
        return f"CASE {key_sql} {' '.join(branches)} ELSE NULL END", tuple(params)
