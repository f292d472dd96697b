"""Published-code side of `compare_step.py`: run by the PUBLISHED code's python, never
imported by mfax.

Builds the published RSPG (``--algo rspg``, ``rspg.py``) or SPG (``--algo spg``, ``spg.py``:
the feed-forward ``MeanFieldPolicy``) learner exactly as its script does (same network,
initialisation from ``PRNGKey(seed)``, optimiser, ``make_train_step``) for ``--task``
(``beach_bar_1d`` or ``linear_quadratic``), then for the first ``--steps`` iterations
exports, per iteration:

- the gradient that the published ``_train_step`` itself computes (captured with an
  optimiser that stores the gradient in its state and leaves the parameters alone);
- the batch it was computed on (the common-noise values per environment: bar location
  and closure coin, or the sign z; the normalised observations, the mean fields, the
  action probabilities, the rewards and the loss), from a step-by-step replay of its
  ``_mf_rollout`` with the same keys; the replay's own gradient must equal the captured
  one (checked and written down);
- the parameters and the Adam moments after the real optimiser step (clip 1.0, Adam,
  lr annealed linearly to 10% over ``--iterations``) and the learning rate used.

With ``--run N`` it also replays the published script's first N iterations from the same
key chain (one split for each evaluation, every ``--eval-every`` iterations, the first one
before training), training in chunks of ``--eval-every`` with ``lax.scan`` as the script
does, and exports each iteration's common-noise values and the final parameters.

Writes ``step.npz`` (arrays, parameter paths joined by ``/``) and ``step.json``.
"""

import argparse
import importlib.util
import json
import os
import sys
import types

import numpy as np

#: published task -> {mfax noise field: published aggregate field}: the common-noise values
#: of one environment (read at its last time step: the beach bar's closure coin is drawn
#: at t = T // 2 and kept; the bar location and linear-quadratic's sign at reset)
NOISE_FIELDS = {
    "beach_bar_1d": {"bar": "bar_loc", "z": "z"},
    "linear_quadratic": {"z": "z"},
}


def flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        name = f"{prefix}/{k}" if prefix else str(k)
        if hasattr(v, "items"):
            out.update(flatten(dict(v), name))
        else:
            out[name] = np.asarray(v)
    return out


def unflatten(flat):
    tree = {}
    for name, v in flat.items():
        *path, last = name.split("/")
        node = tree
        for k in path:
            node = node.setdefault(k, {})
        node[last] = v
    return tree


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--task", default="beach_bar_1d")
    ap.add_argument("--algo", default="rspg")
    ap.add_argument("--state-type", default="indices")
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-envs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument(
        "--run",
        type=int,
        default=0,
        help="also replay the published script's first RUN iterations from the "
        "same key chain (its evaluation splits included): export each "
        "iteration's common-noise values and the final parameters",
    )
    ap.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="the script's --eval-frequency (a key split after each chunk); default --run",
    )
    ap.add_argument(
        "--init-npz",
        default=None,
        help="start from these parameters (published names joined by '/', e.g. mfax's "
        "initial parameters converted) instead of the PRNGKey(seed) initialisation; "
        "the key chain (batches) stays that of --seed",
    )
    a = ap.parse_args()

    repo = os.path.abspath(a.repo)
    sys.path.insert(0, repo)
    import jax
    import jax.numpy as jnp
    import optax
    from flax.training.train_state import TrainState
    from mfax.algos.hsm.utils.mf_policy_wrappers import (
        MeanFieldPolicy,
        RecurrentMeanFieldPolicy,
    )
    from mfax.envs import make_env

    # the published script's module (its make_train_step), imported by path
    script = os.path.join(repo, "mfax", "algos", "hsm", "algos", f"{a.algo}.py")
    spec = importlib.util.spec_from_file_location(f"published_{a.algo}", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if a.algo not in ("rspg", "spg"):
        raise SystemExit(f"algo {a.algo!r} is not wired here; expected rspg or spg")
    recurrent = a.algo == "rspg"
    if a.task not in NOISE_FIELDS:
        raise SystemExit(f"task {a.task!r} is not wired here; expected one of {list(NOISE_FIELDS)}")
    fields = NOISE_FIELDS[a.task]

    def noise_values(agg):  # mfax field -> [E], read at the last time step
        return {m: np.asarray(getattr(agg, f)) for m, f in fields.items()}

    args = types.SimpleNamespace(
        num_envs=a.num_envs,
        normalize_obs=True,
        normalize_states=a.state_type != "indices",
        discount_factor=a.gamma,
        debug=False,
        debug_frequency=10,
        task=a.task,
    )
    env = make_env("pushforward/" + a.task, common_noise=True)
    T = int(env.params.max_steps_in_episode)
    # --- network and initialisation: as in the published script's __main__ ---
    if recurrent:
        net = RecurrentMeanFieldPolicy(
            state_type=a.state_type,
            num_states=env.n_states,
            encoder_kwargs=dict(hidden_size=128, embed_size=128, activation="relu"),
            policy_kwargs=dict(
                n_actions=env.n_actions,
                hidden_layer_sizes=(128, 128, 128),
                activation="relu",
                state_type=a.state_type,
                num_states=env.n_states,
            ),
        )
    else:  # spg.py's discrete-action branch
        net = MeanFieldPolicy(
            state_type=a.state_type,
            num_states=env.n_states,
            policy_kwargs=dict(
                n_actions=env.n_actions, hidden_layer_sizes=(128, 128, 128), activation="relu"
            ),
        )
    states = jnp.arange(env.n_states) if a.state_type == "indices" else env.params.states
    s_in = env.normalize_individual_s(states, args.normalize_states)  # the network's state input
    rng = jax.random.PRNGKey(a.seed)
    rng, rng_actor, rng_action = jax.random.split(rng, 3)
    hidden0 = net.init_hidden(a.num_envs, 128) if recurrent else None
    done0 = jnp.zeros((a.num_envs,), bool)
    init_obs = jnp.ones((a.num_envs, env.obs_dim), jnp.float32)
    init_inputs = (s_in, env.normalize_obs(init_obs, True))
    if recurrent:
        params = net.init(rng_actor, *init_inputs, hidden0, done0, rng_action)
    else:
        params = net.init(rng_actor, *init_inputs, rng_action)
    if a.init_npz:
        given = dict(np.load(a.init_npz))
        want = flatten(params)
        if given.keys() != want.keys() or any(given[k].shape != want[k].shape for k in want):
            raise SystemExit(f"--init-npz: parameter names or shapes differ from {list(want)}")
        params = jax.tree.map(jnp.asarray, unflatten(given))
    schedule = optax.linear_schedule(a.lr, a.lr * 0.1, a.iterations)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate=schedule, eps=1e-8))

    # an "optimiser" that keeps the gradient in its state and changes nothing
    capture = optax.GradientTransformation(
        lambda p: jax.tree.map(jnp.zeros_like, p),
        lambda g, s, p=None: (jax.tree.map(jnp.zeros_like, g), g),
    )

    train_step = jax.jit(mod.make_train_step(args, env, net, states))

    # --- a replay of the published _mf_rollout / _expected_return with the same keys ---
    def replay(actor_params, rng):
        rng, reset_rng, loop_rng = jax.random.split(rng, 3)
        obs, agg = jax.vmap(env.mf_reset)(jax.random.split(reset_rng, a.num_envs))
        hidden, done = hidden0, done0
        rec = []
        key = loop_rng
        for _ in range(T):
            key, rng_env, rng_next = jax.random.split(key, 3)
            nobs = env.normalize_obs(obs, True)
            if recurrent:
                prob_a, hidden = net.dist_prob(actor_params, s_in, nobs, hidden, done)
            else:
                prob_a = net.dist_prob(actor_params, s_in, nobs)
            out = jax.vmap(env.mf_step)(jax.random.split(rng_env, a.num_envs), agg, prob_a)
            rec.append((nobs, agg, out[4], prob_a))
            obs, agg = out[0], out[2]
            done = jnp.logical_or(out[5], out[6])
            key = rng_next
        disc = jnp.zeros_like(rec[0][1].mu)
        for _, agg_t, mat_r, prob_a in reversed(rec):
            disc = jnp.sum(prob_a * mat_r, -1) + a.gamma * jax.vmap(env.mf_expected_value)(
                disc, prob_a, agg_t
            )
        loss = -jnp.sum(disc * rec[0][1].mu, -1).mean()
        return loss, rec

    replay_grad = jax.jit(jax.value_and_grad(replay, has_aux=True))

    out = {}
    info = dict(
        algo=a.algo,
        task=a.task,
        seed=a.seed,
        num_envs=a.num_envs,
        lr=a.lr,
        iterations=a.iterations,
        horizon=T,
        steps=[],
    )
    for k, v in flatten(params).items():
        out[f"init/{k}"] = v
    state = TrainState.create(apply_fn=(), params=params, tx=tx)
    for step in range(a.steps):
        # 1) the gradient computed by the published train step itself
        cap = TrainState.create(apply_fn=(), params=state.params, tx=capture)
        (cap, _), _ = train_step((cap, rng), None)
        grads = cap.opt_state
        # 2) the replay on the same keys: batch, loss, its own gradient
        _, rng_loss = jax.random.split(rng)
        (loss, rec), rgrads = replay_grad(state.params, rng_loss)
        gdiff = max(
            float(jnp.max(jnp.abs(x - y)))
            for x, y in zip(jax.tree.leaves(grads), jax.tree.leaves(rgrads))
        )
        gnorm = float(optax.global_norm(grads))
        # 3) the real optimiser step
        lr_now = float(schedule(state.opt_state[1][1].count))
        (state, rng), _ = train_step((state, rng), None)
        p = f"step{step}"
        for k, v in flatten(grads).items():
            out[f"{p}/grad/{k}"] = v
        for k, v in flatten(state.params).items():
            out[f"{p}/params/{k}"] = v
        for k, v in flatten(state.opt_state[1][0].mu).items():
            out[f"{p}/adam_mu/{k}"] = v
        for k, v in flatten(state.opt_state[1][0].nu).items():
            out[f"{p}/adam_nu/{k}"] = v
        for m, v in noise_values(rec[-1][1]).items():
            out[f"{p}/noise/{m}"] = v  # [E]
        out[f"{p}/z"] = np.stack([np.asarray(r[1].z) for r in rec])  # [T, E]
        out[f"{p}/obs"] = np.stack([np.asarray(r[0]) for r in rec])  # [T, E, d]
        out[f"{p}/mu"] = np.stack([np.asarray(r[1].mu) for r in rec])  # [T, E, S]
        out[f"{p}/probs"] = np.stack([np.asarray(r[3]) for r in rec])  # [T, E, S, A]
        out[f"{p}/reward"] = np.stack([np.asarray(r[2]) for r in rec])  # [T, E, S, A]
        info["steps"].append(
            dict(
                loss=float(loss),
                grad_global_norm=gnorm,
                lr=lr_now,
                replay_vs_train_step_grad_max_abs_diff=gdiff,
            )
        )
        print(
            f"published step {step}: loss {float(loss):.6f}, |grad| {gnorm:.6f}, lr "
            f"{lr_now:.3e}, replay-vs-train_step grad diff {gdiff:.2e}",
            flush=True,
        )
    if a.run:
        # the published script: rng after the init split, one split for the first
        # evaluation, then chunks of eval_every iterations (lax.scan of its train step),
        # each followed by an evaluation's split
        every = a.eval_every or a.run
        if a.run % every:
            raise SystemExit(f"--run {a.run} is not a multiple of --eval-every {every}")
        key = jax.random.PRNGKey(a.seed)
        key, _, _ = jax.random.split(key, 3)
        key, _ = jax.random.split(key)
        uniform = jnp.full((a.num_envs, env.n_states, env.n_actions), 1.0 / env.n_actions)

        @jax.jit
        def draws(key):  # the iteration's noise values: they depend on the key only
            _, k = jax.random.split(key)
            _, reset_rng, loop_rng = jax.random.split(k, 3)
            _, agg = jax.vmap(env.mf_reset)(jax.random.split(reset_rng, a.num_envs))
            for _ in range(T - 1):
                loop_rng, rng_env, rng_next = jax.random.split(loop_rng, 3)
                agg = jax.vmap(env.mf_step)(jax.random.split(rng_env, a.num_envs), agg, uniform)[2]
                loop_rng = rng_next
            return {m: getattr(agg, f) for m, f in fields.items()}

        chunk = jax.jit(lambda st, k: jax.lax.scan(train_step, (st, k), None, every)[0])
        st = TrainState.create(apply_fn=(), params=params, tx=tx)
        noise = {m: [] for m in fields}
        for _ in range(a.run // every):
            k = key
            for _ in range(every):
                for m, v in draws(k).items():
                    noise[m].append(np.asarray(v))
                k, _ = jax.random.split(k)
            st, key = chunk(st, key)
            assert np.array_equal(np.asarray(k), np.asarray(key)), "key chain out of step"
            key, _ = jax.random.split(key)  # the evaluation's split
        for m, v in noise.items():
            out[f"run/noise/{m}"] = np.stack(v)  # [N, E]
        for k, v in flatten(st.params).items():
            out[f"run/params/{k}"] = v
        info["run"] = a.run
        info["eval_every"] = every
        print(f"published: {a.run} iterations replayed", flush=True)
    info["schedule"] = [float(schedule(i)) for i in range(a.iterations + 1)]
    os.makedirs(a.out, exist_ok=True)
    np.savez(os.path.join(a.out, "step.npz"), **out)
    with open(os.path.join(a.out, "step.json"), "w") as f:
        json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
