"""Where one compiled training iteration spends its time, XLA operation by operation.

    python benchmarks/profile_step.py --game macro --algo spg --num-envs 8 [--top 30]
    python benchmarks/profile_step.py ... --compiler-option xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT
    python benchmarks/profile_step.py --game macro --algo rippo --config data/macro/rippo/config.yaml

Runs one iteration (`trainer.iteration`, the game at its published size, or the
run config of ``--config``: any algorithm)
under `jax.profiler.trace`, sums the runtime's per-operation events over the
iteration and prints the costliest operations with the JAX source operation each
came from (the HLO instruction's ``op_name``: ``jvp(...)`` is the forward pass,
``transpose(jvp(...))`` the gradient) and how many times it ran (128 = once per
step of a 128-step scan). On CPU every event is one XLA thunk, so the seconds add
up to the iteration's. ``--iterations N`` runs N iterations in one compiled scan
(as the trainer's chunks do) and prints the per-iteration means: a single iteration
also pays for first touching its fresh buffers (macro SPG's zero fills of the stored
residuals take 0.079 s alone, 0.023 s per iteration within a scan of four). The step
compiles with the options the trainer's own driver gives it
(`TrainConfig.compiler_options`); ``--compiler-option KEY=VALUE`` (repeatable) adds or
overrides one, to compare. docs/PERFORMANCE.md, "Where a macro iteration goes".
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile
import time

import jax

from mfax.algorithms import get_algorithm
from mfax.io import read_yaml
from mfax.training import TrainConfig

#: events that time the runtime itself, not an operation
_RUNTIME = ("$", "ThunkExecutor", "SlinkyThreadPool", "PjitFunction")


def _op_names(hlo_text: str) -> dict[str, tuple[str, str]]:
    """``instruction name -> (result shape, op_name)`` from the compiled HLO's text."""
    pattern = r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+) [^\n]*?op_name=\"([^\"]+)\""
    names: dict[str, tuple[str, str]] = {}
    for m in re.finditer(pattern, hlo_text, re.M):
        names.setdefault(m.group(1), (m.group(2), m.group(3)))
    return names


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--compiler-option {text!r}: expected KEY=VALUE")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def profile(config, options: dict | None, top: int, iterations: int = 1) -> None:
    trainer = get_algorithm(config.algo).make_train(config)
    state = trainer.init(jax.random.key(0))
    options = {**(config.compiler_options() or {}), **(options or {})} or None

    def run(state):
        return jax.lax.scan(trainer.iteration, state, None, length=iterations)

    step = jax.jit(run).lower(state).compile(compiler_options=options)
    jax.block_until_ready(step(state))
    t0 = time.perf_counter()
    jax.block_until_ready(step(state))
    seconds = (time.perf_counter() - t0) / iterations
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            jax.block_until_ready(step(state))
        (trace,) = glob.glob(f"{folder}/**/perfetto_trace.json.gz", recursive=True)
        with gzip.open(trace) as f:
            events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    total, calls = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(_RUNTIME):
            total[e["name"]] += e.get("dur", 0) / 1e6 / iterations
            calls[e["name"]] += 1 / iterations
    names = _op_names(step.as_text())
    print(
        f"# {config.game} {config.algo}, {trainer.num_envs} environments: one iteration "
        f"{seconds:.3f} s untraced (mean of {iterations} in one scan); operations traced "
        f"{sum(total.values()):.3f} s per iteration "
        f"(jax {jax.__version__}, {jax.devices()[0].device_kind}; options {options})"
    )
    print(f"{'seconds':>8} {'share':>6} {'calls':>6}  {'operation':32} {'shape':26} from")
    whole = sum(total.values()) or 1.0
    for name, secs in total.most_common(top):
        shape, op = names.get(name, ("", ""))
        op = op.replace("jit(iteration)/", "").replace("while/body/closed_call/", "")
        print(
            f"{secs:8.3f} {secs / whole:6.1%} {calls[name]:6.0f}  {name[:32]:32} "
            f"{shape[:26]:26} {op[-100:]}"
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--game", default="macro")
    ap.add_argument("--algo", default="spg")
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--state-input", default=None, help="e.g. values (macro's quality runs)")
    ap.add_argument(
        "--config", default=None, help="a run's config file (data/<game>/<run>/config.yaml)"
    )
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument(
        "--iterations", type=int, default=1, help="iterations in one compiled scan (means)"
    )
    ap.add_argument("--compiler-option", type=_option, action="append", default=[])
    a = ap.parse_args(argv)
    if a.config:
        data = read_yaml(a.config, "--config")
        data.pop("seeds", None)  # the pipeline's, not a training key
        config = get_algorithm(a.algo).config_class.from_mapping(
            data, game=a.game, algo=a.algo, source=a.config
        )
    else:
        extra = {"state_input": a.state_input} if a.state_input else {}
        config = TrainConfig(game=a.game, algo=a.algo, num_envs=a.num_envs, **extra)
    if a.iterations < 1:
        ap.error(f"--iterations {a.iterations}: expected an integer >= 1")
    profile(config, dict(a.compiler_option) or None, a.top, a.iterations)


if __name__ == "__main__":
    main()
