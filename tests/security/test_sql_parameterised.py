"""SQL is always parameterised: every statement a service runs is a named module constant (built
at import time from other constants only), never text formatted with values at call time. The
few statements that must name an identifier (a database, a schema, a partition), which
PostgreSQL cannot take as a parameter, are listed with the reason they are safe."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "cursor", "prepare",
               "copy_records_to_table", "copy_to_table", "copy_from_query"}
# What a database handle is called here (JetStream's `fetch` is not SQL).
DATABASE_HANDLE = re.compile(r"(pool|conn|connection|db|tx|admin)$")
# (file, function) -> why a statement built at call time is safe there.
EXCEPTIONS = {
    ("libs/common/db.py", "ensure_database"):
        "database name from the settings (the operator's), quoted as an identifier",
    ("libs/common/db.py", "migrate"): "schema name of the service itself (a constant)",
    ("services/telemetry/partitions.py", "ensure"):
        "partition name and bounds computed from a date, not from input",
    ("services/telemetry/partitions.py", "drop_expired"):
        "partition names read from the catalogue, of the service's own naming",
    # A variable holding one of two constants chosen by a flag, or a constant handed in.
    ("services/telemetry/repo.py", "raw_page"): "RAW_PAGE_ASC or RAW_PAGE_DESC",
    ("services/commands/repo.py", "change"): "callers pass a module constant",
    # Statements generated from a count of columns (services/telemetry/wide_sql.py): field
    # names stay parameters referred to by position; only integers shape the text.
    ("services/telemetry/repo.py", "hourly_wide"): "hourly_wide_sql(number of fields)",
    ("services/telemetry/repo.py", "all_hourly_wide"): "all_hourly_wide_sql(number of fields)",
    ("services/telemetry/repo.py", "export_csv"): "export_csv_sql(number of fields)",
}


def python_files() -> list[Path]:
    return sorted([*ROOT.glob("services/**/*.py"), *ROOT.glob("libs/**/*.py")])


def is_constant_name(node: ast.expr) -> bool:
    """NAME, _NAME or module.NAME: a constant by the project's naming."""
    name = node.id if isinstance(node, ast.Name) else (
        node.attr if isinstance(node, ast.Attribute) else "")
    return bool(name) and name.lstrip("_").replace("_", "").isalnum() and name.isupper()


def sql_calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    """(enclosing function, call) of every database call with a statement argument."""
    found: list[tuple[str, ast.Call]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and child.func.attr in SQL_METHODS and child.args
                    and DATABASE_HANDLE.search(ast.unparse(child.func.value))):
                found.append((function, child))
            visit(child, function)

    visit(tree, "<module>")
    return found


def test_every_statement_is_a_constant_or_a_listed_exception() -> None:
    offending, used_exceptions = [], set()
    for path in python_files():
        relative = str(path.relative_to(ROOT))
        for function, call in sql_calls(ast.parse(path.read_text())):
            statement = call.args[0]
            if is_constant_name(statement) or (isinstance(statement, ast.Constant)
                                               and isinstance(statement.value, str)):
                continue
            if (relative, function) in EXCEPTIONS:
                used_exceptions.add((relative, function))
                continue
            offending.append(f"{relative}:{call.lineno} in {function}: "
                             f"{ast.unparse(statement)[:80]}")
    assert not offending, "SQL built at call time:\n" + "\n".join(offending)
    # An exception nobody needs any more is dropped from the list.
    assert used_exceptions == set(EXCEPTIONS), set(EXCEPTIONS) - used_exceptions


def test_statement_constants_are_built_from_constants_only() -> None:
    """A module constant may be an f-string or .format() of other constants (column lists,
    shared filters), never of anything else."""
    offending = []
    for path in python_files():
        for node in ast.parse(path.read_text()).body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and is_constant_name(node.targets[0])):
                continue
            formatted = [n for n in ast.walk(node.value) if isinstance(n, ast.JoinedStr) or (
                isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr == "format")]
            for part in formatted:
                for inner in ast.walk(part):
                    if (isinstance(inner, ast.Name) and not is_constant_name(inner)
                            and inner.id not in ("str", "len", "sorted", "join")):
                        offending.append(f"{path.relative_to(ROOT)}:{node.lineno} "
                                         f"{ast.unparse(node.targets[0])} uses {inner.id}")
    assert not offending, offending
