"""Configuration of the model-free learners (IPPO, RIPPO, M-OMD).

Shares its layout, common keys and their validation with
`mfax.training.config.TrainConfig` (both extend `BaseTrainConfig`):
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
import math

from mfax.algorithms import list_algorithms
from mfax.network_config import layer_sizes
from mfax.training.config import BaseTrainConfig, _is_num

RL_ALGORITHMS = tuple(list_algorithms("model-free"))  # ("ippo", "rippo", "m_omd")
DEFAULT_NUM_ENVS = 8
DEFAULT_NUM_AGENTS = 10_000


@dataclasses.dataclass(frozen=True)
class RLConfig(BaseTrainConfig):
    """Settings of an IPPO / RIPPO / M-OMD run (see the module docstring)."""

    _PREFIX = "RL config"
    _ALGORITHMS = RL_ALGORITHMS
    _RECURRENT_ALGO = "rippo"

    # shared fields (order and defaults) come from BaseTrainConfig; re-declared defaults:
    algo: str = "ippo"
    max_grad_norm: float = 0.5
    # --- outer loop ---
    num_agents: int = DEFAULT_NUM_AGENTS
    num_agents_per_env: int = 64
    num_updates_per_iteration: int = 50
    # --- optimisation ---
    reward_scale: float | None = None
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

    __hash__ = BaseTrainConfig.__hash__

    def __post_init__(self):
        super().__post_init__()
        bad = self._bad
        self._check_ints(
            "num_agents",
            "num_agents_per_env",
            "num_updates_per_iteration",
            "update_epochs",
            "num_minibatches",
            "buffer_size",
            "batch_size",
            "gradient_steps",
            "target_update_every",
        )
        if self.reward_scale is not None and (
            not _is_num(self.reward_scale)
            or not math.isfinite(self.reward_scale)
            or self.reward_scale <= 0
        ):
            raise bad(
                "reward_scale",
                self.reward_scale,
                "null (1 / mean |reward| of the first rollout) or a finite number > 0",
            )
        self._set("critic_hidden", layer_sizes(self._PREFIX, "critic_hidden", self.critic_hidden))
        if self.algo == "m_omd" and self.head == "beta":
            raise bad(
                "head",
                self.head,
                "'auto' or 'categorical' for m_omd (a Q-network has "
                "one output per action; its policy is softmax(Q / tau))",
            )
        # PPO
        trajectories = self.resolved_num_envs() * self.num_agents_per_env
        if trajectories % self.num_minibatches:
            raise bad(
                "num_minibatches",
                self.num_minibatches,
                f"a divisor of num_envs * num_agents_per_env = "
                f"{self.resolved_num_envs()} * {self.num_agents_per_env} = {trajectories} "
                "(the trajectories of one batch)",
            )
        for k, lo, hi in (
            ("clip_eps", 0.0, None),
            ("gae_lambda", 0.0, 1.0),
            ("ent_coef", 0.0, None),
            ("vf_coef", 0.0, None),
            ("tau", 0.0, None),
            ("alpha", 0.0, 1.0),
            ("epsilon_start", 0.0, 1.0),
            ("epsilon_end", 0.0, 1.0),
            ("epsilon_decay_fraction", 0.0, 1.0),
        ):
            v = getattr(self, k)
            strict = k in ("clip_eps", "tau", "epsilon_decay_fraction")
            ok = (
                _is_num(v)
                and math.isfinite(v)
                and (v > lo if strict else v >= lo)
                and (hi is None or v <= hi)
            )
            if not ok:
                rng = f"{'(' if strict else '['}{lo:g}, {'inf)' if hi is None else f'{hi:g}]'}"
                raise bad(k, v, f"a number in {rng}")
        if not _is_num(self.log_policy_clip) or not self.log_policy_clip < 0:
            raise bad("log_policy_clip", self.log_policy_clip, "a number < 0")
        # M-OMD replay buffer
        per_update = trajectories * self.game_parameters().horizon
        if self.algo == "m_omd":
            if self.buffer_size < per_update:
                raise bad(
                    "buffer_size",
                    self.buffer_size,
                    f"an integer >= the transitions collected per update, num_envs * "
                    f"num_agents_per_env * horizon = {per_update}",
                )
            if self.batch_size > self.buffer_size:
                raise bad(
                    "batch_size", self.batch_size, f"an integer <= buffer_size = {self.buffer_size}"
                )

    # --- derived -----------------------------------------------------------
    def resolved_num_envs(self) -> int:
        return DEFAULT_NUM_ENVS if self.num_envs is None else self.num_envs

    def _beta_allowed(self) -> bool:
        return self.algo != "m_omd"  # a Q-network's policy is categorical
