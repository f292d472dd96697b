"""Configuration of the model-free learners (IPPO, RIPPO, M-OMD).

Same layout and validation style as `mfax.training.config.TrainConfig`:
a frozen dataclass whose ``__post_init__`` checks every key and raises a
ValueError naming the key, its value and what is allowed -- *before*
anything is compiled -- and a ``from_mapping`` for the YAML / ``--set``
layer (training keys at the top level, an optional ``game:`` mapping).

Keys common to the three learners (``None`` entries take the defaults
listed next to them):

- outer loop: ``num_iterations`` (200), ``eval_every`` (20),
  ``num_envs`` (None: 8), ``num_agents`` (agents per environment of the
  sample-based rollout that produces the frozen mean-field sequence,
  10,000), ``num_agents_per_env`` (single-agent trajectories per
  environment in each update's batch, 64), ``num_updates_per_iteration``
  (50), ``eval_num_envs`` (None: num_envs), ``gamma`` (None: the game's);
- optimisation: ``lr``, ``lr_end_fraction`` (linear annealing over all
  gradient steps), ``max_grad_norm``, ``reward_scale`` (None: 1 / mean |R|
  of the first frozen sequence, fixed for the run);
- network (the mean-field policy structure of `mfax.networks`):
  ``state_input``, ``hidden``, ``embed_dim``, ``gru_hidden``, ``head``,
  ``activation``, ``factored``.

IPPO / RIPPO: ``update_epochs``, ``num_minibatches`` (must divide
``num_envs * num_agents_per_env``, the trajectories of one batch),
``clip_eps`` (0.2), ``gae_lambda`` (0.95), ``ent_coef`` (0.01), ``vf_coef``
(0.5), ``critic_hidden``.

M-OMD: ``tau`` (softmax temperature), ``alpha`` (Munchausen scaling),
``log_policy_clip`` (the lower clip l0 of the Munchausen term),
``buffer_size`` (>= one update's transitions), ``batch_size``,
``gradient_steps`` (per update), ``target_update_every`` (updates),
``epsilon_start``, ``epsilon_end``, ``epsilon_decay_fraction``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping, Optional

import numpy as np

from mfax.games import canonical_name, make_game
from mfax.games.base import Game
from mfax.networks import ACTIVATIONS, STATE_INPUTS, NetworkConfig
from mfax.training.config import HEAD_CHOICES, MappingConfig, _is_int, _is_num

RL_ALGORITHMS = ("ippo", "rippo", "m_omd")
DEFAULT_NUM_ENVS = 8
DEFAULT_NUM_AGENTS = 10_000


def _bad(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"RL config: {name!r} = {value!r} is not allowed; expected {allowed}")


def _layers(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value \
            or not all(_is_int(h) and h >= 1 for h in value):
        raise _bad(name, value, "a non-empty list of integers >= 1, e.g. [128, 128]")
    return tuple(int(h) for h in value)


@dataclasses.dataclass(frozen=True)
class RLConfig(MappingConfig):
    """Settings of an IPPO / RIPPO / M-OMD run (see the module docstring)."""

    game: str = "linear_quadratic"
    game_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    algo: str = "ippo"
    # --- outer loop ---
    num_iterations: int = 200
    eval_every: int = 20
    num_envs: Optional[int] = None
    eval_num_envs: Optional[int] = None
    num_agents: int = DEFAULT_NUM_AGENTS
    num_agents_per_env: int = 64
    num_updates_per_iteration: int = 50
    gamma: Optional[float] = None
    # --- optimisation ---
    lr: float = 1e-3
    lr_end_fraction: float = 0.1
    max_grad_norm: float = 0.5
    reward_scale: Optional[float] = None
    # --- network (mean-field policy / Q-network) ---
    state_input: str = "index"
    hidden: tuple[int, ...] = (128, 128, 128)
    embed_dim: int = 64
    gru_hidden: int = 128
    head: str = "auto"
    activation: str = "relu"
    factored: bool = True
    # --- IPPO / RIPPO ---
    update_epochs: int = 2
    num_minibatches: int = 4
    clip_eps: float = 0.2
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    critic_hidden: tuple[int, ...] = (128, 128)
    # --- M-OMD ---
    tau: float = 0.05
    alpha: float = 0.9
    log_policy_clip: float = -1.0
    buffer_size: int = 200_000
    batch_size: int = 512
    gradient_steps: int = 4
    target_update_every: int = 10
    epsilon_start: float = 0.5
    epsilon_end: float = 0.02
    epsilon_decay_fraction: float = 0.5

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if not isinstance(self.game, str):
            raise _bad("game", self.game, "a game name")
        set_("game", canonical_name(self.game))
        if not isinstance(self.game_params, Mapping):
            raise _bad("game", self.game_params, "a mapping of game parameters")
        set_("game_params", dict(self.game_params))
        if self.algo not in RL_ALGORITHMS:
            raise _bad("algo", self.algo, " or ".join(RL_ALGORITHMS))
        for k in ("num_iterations", "eval_every", "num_agents", "num_agents_per_env",
                  "num_updates_per_iteration", "embed_dim", "gru_hidden", "update_epochs",
                  "num_minibatches", "buffer_size", "batch_size", "gradient_steps",
                  "target_update_every"):
            v = getattr(self, k)
            if not _is_int(v) or v < 1:
                raise _bad(k, v, "an integer >= 1")
            set_(k, int(v))
        if self.num_iterations % self.eval_every:
            raise _bad("num_iterations", self.num_iterations,
                       f"a multiple of eval_every = {self.eval_every}")
        for k in ("num_envs", "eval_num_envs"):
            v = getattr(self, k)
            if v is not None and (not _is_int(v) or v < 1):
                raise _bad(k, v, "null (default) or an integer >= 1")
            if v is not None:
                set_(k, int(v))
        if self.gamma is not None and (not _is_num(self.gamma) or not 0.0 < self.gamma <= 1.0):
            raise _bad("gamma", self.gamma, "null (the game's default) or a number in (0, 1]")
        if not _is_num(self.lr) or not math.isfinite(self.lr) or self.lr <= 0:
            raise _bad("lr", self.lr, "a finite number > 0")
        if not _is_num(self.lr_end_fraction) or not 0.0 <= self.lr_end_fraction <= 1.0:
            raise _bad("lr_end_fraction", self.lr_end_fraction, "a number in [0, 1]")
        if not _is_num(self.max_grad_norm) or not self.max_grad_norm > 0:
            raise _bad("max_grad_norm", self.max_grad_norm, "a number > 0")
        if self.reward_scale is not None and (
                not _is_num(self.reward_scale) or not math.isfinite(self.reward_scale)
                or self.reward_scale <= 0):
            raise _bad("reward_scale", self.reward_scale,
                       "null (1 / mean |reward| of the first rollout) or a finite number > 0")
        if self.state_input not in STATE_INPUTS:
            raise _bad("state_input", self.state_input, " or ".join(STATE_INPUTS))
        set_("hidden", _layers("hidden", self.hidden))
        set_("critic_hidden", _layers("critic_hidden", self.critic_hidden))
        if self.head not in HEAD_CHOICES:
            raise _bad("head", self.head, " or ".join(HEAD_CHOICES))
        if self.algo == "m_omd" and self.head == "beta":
            raise _bad("head", self.head, "'auto' or 'categorical' for m_omd (a Q-network has "
                       "one output per action; its policy is softmax(Q / tau))")
        if self.activation not in ACTIVATIONS:
            raise _bad("activation", self.activation, " or ".join(ACTIVATIONS))
        if not isinstance(self.factored, bool):
            raise _bad("factored", self.factored, "true or false")
        # PPO
        trajectories = self.resolved_num_envs() * self.num_agents_per_env
        if trajectories % self.num_minibatches:
            raise _bad("num_minibatches", self.num_minibatches,
                       f"a divisor of num_envs * num_agents_per_env = "
                       f"{self.resolved_num_envs()} * {self.num_agents_per_env} = {trajectories} "
                       "(the trajectories of one batch)")
        for k, lo, hi in (("clip_eps", 0.0, None), ("gae_lambda", 0.0, 1.0),
                          ("ent_coef", 0.0, None), ("vf_coef", 0.0, None),
                          ("tau", 0.0, None), ("alpha", 0.0, 1.0),
                          ("epsilon_start", 0.0, 1.0), ("epsilon_end", 0.0, 1.0),
                          ("epsilon_decay_fraction", 0.0, 1.0)):
            v = getattr(self, k)
            strict = k in ("clip_eps", "tau", "epsilon_decay_fraction")
            ok = _is_num(v) and math.isfinite(v) and (v > lo if strict else v >= lo) \
                and (hi is None or v <= hi)
            if not ok:
                rng = f"{'(' if strict else '['}{lo:g}, {'inf)' if hi is None else f'{hi:g}]'}"
                raise _bad(k, v, f"a number in {rng}")
        if not _is_num(self.log_policy_clip) or not self.log_policy_clip < 0:
            raise _bad("log_policy_clip", self.log_policy_clip, "a number < 0")
        # M-OMD replay buffer
        per_update = trajectories * self.make_game().horizon
        if self.algo == "m_omd":
            if self.buffer_size < per_update:
                raise _bad("buffer_size", self.buffer_size,
                           f"an integer >= the transitions collected per update, num_envs * "
                           f"num_agents_per_env * horizon = {per_update}")
            if self.batch_size > self.buffer_size:
                raise _bad("batch_size", self.batch_size,
                           f"an integer <= buffer_size = {self.buffer_size}")

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=repr))

    # --- derived -----------------------------------------------------------
    @property
    def recurrent(self) -> bool:
        return self.algo == "rippo"

    def make_game(self) -> Game:
        return make_game(self.game, **self.game_params)

    def resolved_num_envs(self) -> int:
        return DEFAULT_NUM_ENVS if self.num_envs is None else self.num_envs

    def resolved_eval_num_envs(self) -> int:
        return self.eval_num_envs if self.eval_num_envs is not None else self.resolved_num_envs()

    def resolved_gamma(self, game: Game) -> float:
        return float(game.default_discount if self.gamma is None else self.gamma)

    def network(self, game: Game) -> NetworkConfig:
        head = self.head
        if head == "auto":
            values = np.asarray(game.action_values())
            beta_ok = values.min() > 0 and values.max() < 1
            head = "beta" if beta_ok and self.algo != "m_omd" else "categorical"
        return NetworkConfig(recurrent=self.recurrent, state_input=self.state_input,
                             hidden=self.hidden, embed_dim=self.embed_dim,
                             gru_hidden=self.gru_hidden, head=head,
                             activation=self.activation, factored=self.factored)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["critic_hidden"] = list(self.critic_hidden)
        d["game_params"] = dict(self.game_params)
        return d
