"""Shared by the benchmark scripts: reduced game sizes, table printing, the entropy-bonus
option."""

#: reduced game sizes (the `quick` preset's scale) for learning benchmarks
QUICK = {
    "linear_quadratic": dict(num_states=21, horizon=8),
    "beach_bar_1d": dict(num_states=21, horizon=12),
    "macro": dict(num_wealth=8, num_income=3, num_actions=5, horizon=6),
}


def print_table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    print(flush=True)


def add_ent_coef(ap):
    """``--ent-coef`` on an argparse parser (None: `mfax.training.TrainConfig`'s default)."""
    ap.add_argument(
        "--ent-coef",
        type=float,
        default=None,
        help="SPG / RSPG entropy bonus (default: mfax's default; 0: the published learner)",
    )


def ent_kwargs(ent_coef):
    """TrainConfig keyword arguments for ``--ent-coef``: none when it was not given."""
    return {} if ent_coef is None else {"ent_coef": ent_coef}
