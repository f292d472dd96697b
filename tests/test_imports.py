"""The package's import structure: no import cycle among mfax's modules, and a light
``import mfax`` (no JAX for the package, the CLI's help or the algorithm registry)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mfax

ROOT = Path(mfax.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _top_level_imports(tree: ast.Module):
    """The import statements run when the module is imported: module level, including
    inside ``if`` / ``try`` / ``with`` and class bodies, not inside functions, and not
    under ``if TYPE_CHECKING:``."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            todo.extend(node.orelse)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    todo.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


def import_graph() -> dict[str, set[str]]:
    """mfax module -> the mfax modules its top-level imports name (``from pkg import sub``
    names the submodule ``pkg.sub``; ``from pkg import obj`` the package)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "mfax.rl.ippo" in graph["mfax.rl.train"]
    assert "mfax.rl.common" in graph["mfax.rl.ippo"]
    assert "mfax.cli_train" in graph["mfax.cli"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_among_mfax_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_command_modules_do_not_import_the_cli():
    graph = import_graph()
    assert not [m for m, edges in graph.items() if "mfax.cli" in edges]


def _run(code: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT.parent
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(
    "code",
    [
        "import mfax",
        "import mfax; mfax.__version__; dir(mfax)",
        "from mfax.cli import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "assert all(c in r.output for c in ('games', 'solve', 'train', 'evaluate', 'configure', "
        "'train-seeds', 'evaluate-run', 'report', 'summary', 'dvc-yaml')), r.output",
        "from mfax.algorithms import list_algorithms; assert list_algorithms()",
        "import mfax.io",
        "import mfax.pipeline; from mfax.pipeline import *",  # the Snakefile's imports
        # `mfax configure` validates every run's settings and game parameters without JAX,
        # also the quick preset's runs with noise: exact (their noise paths are counted
        # from the game's parameters)
        "import os, shutil, tempfile; from typer.testing import CliRunner; from mfax.cli import app; "
        "d = tempfile.mkdtemp(); shutil.copytree('mfax/../params', d + '/params'); os.chdir(d); "
        "r = CliRunner().invoke(app, ['configure', '--set', 'preset=quick']); "
        "assert r.exit_code == 0, r.output; "
        "from mfax.io import read_yaml; "
        "assert read_yaml('data/linear_quadratic/spg/config.yaml')['noise'] == 'exact'; "
        "assert os.path.isfile('data/macro/m_omd/config.yaml'); "
        "r = CliRunner().invoke(app, ['configure', '--set', 'preset=tiny', "
        "'--set', 'games.macro.game.num_wealth=1']); "
        "assert r.exit_code == 2 and 'num_wealth' in r.output, r.output",
        # a refused noise: exact is refused without JAX too
        "from mfax.training.config import TrainConfig; import pytest; "
        "pytest.raises(ValueError, TrainConfig, game='macro', algo='spg', noise='exact'); "
        "TrainConfig(game='beach_bar_1d', algo='rspg', noise='exact')",
        "from mfax.training.config import TrainConfig; from mfax.rl.config import RLConfig; "
        "TrainConfig.from_mapping({'game': {'num_states': 21}}, game='beach_bar_1d', algo='rspg'); "
        "RLConfig.from_mapping({}, game='macro', algo='ippo')",
    ],
)
def test_light_imports_load_no_jax(code):
    _run(code + "; import sys; assert 'jax' not in sys.modules, 'jax was imported'")


def test_lazy_package_keeps_every_name():
    import mfax.algorithms

    for name in mfax.__all__:
        assert getattr(mfax, name) is not None
    assert set(mfax.__all__) <= set(dir(mfax))
    assert mfax.training.run_training is not None  # submodules as attributes
    with pytest.raises(AttributeError):
        _ = mfax.no_such_name
    assert mfax.list_algorithms() == mfax.algorithms.list_algorithms()


def test_report_and_summary_jobs_load_no_jax(tmp_path):
    """`mfax report` and `mfax summary` run whole, in a fresh interpreter, without JAX (the
    inputs are made here, with JAX: an evaluated uniform policy on a tiny game)."""
    import json

    import jax

    from mfax.io import atomic_write, curve_csv
    from mfax.pipeline.netcdf import trajectory_dataset, write_netcdf

    game = mfax.make_game("linear_quadratic", num_states=9, horizon=5)
    r = mfax.evaluate_policy(game, mfax.uniform_policy(game), jax.random.key(0), num_envs=2)
    base = tmp_path / "reports" / "linear_quadratic" / "spg"
    atomic_write(
        base / "metrics.json",
        json.dumps(
            {"exploitability": float(r.exploitability), "num_seeds": 1, "train_seconds": 1.0}
        ),
    )
    atomic_write(
        base / "curve.csv", curve_csv([{"iteration": 0, "seconds": 0.0, "exploitability": 1.0}])
    )
    nc = tmp_path / "data" / "linear_quadratic" / "spg" / "trajectory.nc"
    write_netcdf(trajectory_dataset(game, r), nc)
    _run(
        "import sys; from typer.testing import CliRunner; from mfax.cli import app; "
        f"m, c, t = {str(base / 'metrics.json')!r}, {str(base / 'curve.csv')!r}, {str(nc)!r}; "
        "r = CliRunner().invoke(app, ['report', '--metrics', m, '--curve', c, '--trajectory', t, "
        f"'--out', {str(base / 'report.html')!r}, '--timings', {str(tmp_path / 'rt.json')!r}]); "
        "assert r.exit_code == 0, r.output; "
        f"r = CliRunner().invoke(app, ['summary', '--out', {str(tmp_path / 'summary.md')!r}, m]); "
        "assert r.exit_code == 0, r.output; assert 'jax' not in sys.modules, 'jax was imported'"
    )
    assert (base / "figures" / "policy.png").stat().st_size > 1000
    assert json.loads((tmp_path / "rt.json").read_text())["stage"] == "report"
    assert "| linear_quadratic | spg | - | - |" in (tmp_path / "summary.md").read_text()
