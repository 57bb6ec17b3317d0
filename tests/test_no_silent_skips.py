"""Under CI (CI=true) nothing the suite needs may be skipped: a missing optional engine or a
missing Chromium fails the run. Read from the test files' source, so a test added later with a
bare importorskip or an unguarded skip fails here instead of passing silently in CI."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path


TESTS = Path(__file__).parent
ROOT = TESTS.parent


def optional_modules() -> set[str]:
    """The import names of the optional extras (ray, tensorboard, mlflow, the notebook tools),
    from pyproject.toml."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {req.split(">")[0].split("=")[0].split("[")[0].strip() for group, reqs in extras.items()
             if group != "test" for req in reqs}
    return {name.split("-")[0] for name in names}  # mlflow-skinny is imported as mlflow


def sources() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text(), str(p)) for p in sorted(TESTS.glob("*.py"))}


def functions(tree: ast.Module):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def calls(node: ast.AST) -> list[str]:
    """Dotted names of every call inside `node` (pytest.skip, need, ...)."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            out.append(ast.unparse(n.func))
    return out


def fails_under_ci(func: ast.AST) -> bool:
    """The function itself turns its skip into a failure when CI=true."""
    text = ast.unparse(func)
    return "pytest.fail" in calls(func) and "'CI'" in text and "'true'" in text


def test_every_skip_fails_instead_under_ci():
    skips = ("pytest.skip", "pytest.importorskip", "pytest.mark.skip", "pytest.mark.skipif")
    found, unguarded = 0, []
    for name, tree in sources().items():
        if name == Path(__file__).name:
            continue
        for func in functions(tree):
            own = [c for c in calls(func) if c in skips]
            if own:
                found += 1
                if not fails_under_ci(func):
                    unguarded.append(f"{name}:{func.lineno} {func.name}")
        for deco in (d for f in functions(tree) for d in f.decorator_list):
            if ast.unparse(deco).startswith(("pytest.mark.skip", "pytest.mark.xfail")):
                unguarded.append(f"{name}:{deco.lineno} {ast.unparse(deco)[:40]}")
    assert found >= 3  # need(), the browser fixture, the tmpfs test: the check sees them
    assert not unguarded, ("skips that would pass silently in CI (use conftest.need, or "
                           f"pytest.fail when CI=true): {unguarded}")


def test_every_optional_engine_is_imported_through_need():
    """A test that imports ray/tensorboard/mlflow calls need(module) first in the same function
    (need skips where it is missing, fails under CI); a module-level import would error instead."""
    # nbconvert is the notebooks' command-line tool (jupyter nbconvert --execute); no test imports it
    optional = optional_modules() - {"nbconvert"}
    assert {"ray", "tensorboard", "mlflow", "nbclient"} <= optional
    needed, bare = set(), []
    for name, tree in sources().items():
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else [stmt.module or ""]
                bare += [f"{name}:{stmt.lineno}" for m in modules if m.split(".")[0] in optional]
        for func in functions(tree):
            guarded = {c.args[0].value for c in ast.walk(func) if isinstance(c, ast.Call)
                       and ast.unparse(c.func) == "need" and c.args and isinstance(c.args[0], ast.Constant)}
            needed |= guarded & optional
            for stmt in ast.walk(func):
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    modules = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else [stmt.module or ""]
                    bare += [f"{name}:{stmt.lineno}" for m in modules
                             if m.split(".")[0] in optional and m.split(".")[0] not in guarded]
    assert not bare, f"optional engines imported without need(): {bare}"
    assert needed == optional  # each engine has a test, and it goes through need()


def test_browser_tests_take_the_fixture_that_fails_under_ci():
    tree = sources()["test_report_browser.py"]
    marked = any(isinstance(s, ast.Assign) and ast.unparse(s.value) == "pytest.mark.browser"
                 for s in tree.body)
    assert marked
    fixture = next(f for f in functions(tree) if f.name == "browser")
    assert fails_under_ci(fixture)
    tests = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")]
    assert tests and all("browser" in [a.arg for a in t.args.args] for t in tests), \
        "a browser test that does not take the `browser` fixture would neither skip nor fail"

