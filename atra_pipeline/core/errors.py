"""Errors for bad input: they say what is wrong and exactly where."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be ingested.

    The message always names the source (file), and where known the row (1-based data row,
    header excluded) or message line, and the column, so a user can open the file at the spot.
    """

    def __init__(self, source: str, problem: str, *, row: int | None = None,
                 column: str | None = None, line: int | None = None):
        self.source, self.problem, self.row, self.column, self.line = source, problem, row, column, line
        where = [str(source)]
        if row is not None:
            where.append(f"row {row}")
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {problem}")
