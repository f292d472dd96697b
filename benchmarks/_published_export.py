"""Published-code side of `cross_evaluate.py`: run by the PUBLISHED code's python, never
imported by mfax.

Loads an agent saved by the published ``spg.py``/``rspg.py`` (``--save`` writes
``runs/<task>/hsm_<algo>/mf_agent_wrapper.pkl``), then

- evaluates it with the published evaluator (``make_exploitability``) on each
  requested number of environments and key, per-environment values included;
- exports its parameters as ``params.npz`` (keys: the parameter path joined by ``/``);
- exports probe inputs and the published probabilities on them (``probes.npz``):
  the normalised observation sequences of one evaluation rollout and random ones,
  stepped through the network from the zero GRU state (recurrent), and the
  probabilities the evaluator itself recorded along its rollout;
- writes everything else to ``published.json``.

Usage (published venv)::

    python benchmarks/_published_export.py --repo /tmp/published-mfax \
        --agent runs/linear_quadratic/hsm_rspg/mf_agent_wrapper.pkl --out /tmp/export \
        --task linear_quadratic --state-type indices --gamma 0.99 \
        --eval-envs 8,256 --eval-keys 0,1,2
"""

import argparse
import json
import os
import pickle
import sys
import time

import numpy as np


def flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        name = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(flatten(dict(v), name))
        else:
            out[name] = np.asarray(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--task", default="linear_quadratic")
    ap.add_argument("--state-type", default="indices")
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--eval-envs", default="8,256")
    ap.add_argument("--eval-keys", default="0,1,2")
    ap.add_argument("--random-probes", type=int, default=4)
    a = ap.parse_args()

    sys.path.insert(0, os.path.abspath(a.repo))
    import jax
    import jax.numpy as jnp
    from mfax.algos.hsm.exploitability import make_exploitability
    from mfax.envs import make_env

    with open(a.agent, "rb") as f:
        agent = pickle.load(f)
    params = agent.mf_params
    recurrent = hasattr(agent, "init_hidden")
    env = make_env("pushforward/" + a.task, common_noise=True)
    T = int(env.params.max_steps_in_episode)
    os.makedirs(a.out, exist_ok=True)

    # --- published evaluator ---
    evals = []
    traj = None
    for n in [int(x) for x in a.eval_envs.split(",")]:
        expl = make_exploitability(
            env=env,
            agent=agent,
            state_type=a.state_type,
            gamma=a.gamma,
            num_envs=n,
            max_steps_in_episode=T,
        )
        for k in [int(x) for x in a.eval_keys.split(",")]:
            t0 = time.perf_counter()
            res = expl(jax.random.PRNGKey(k), params)
            mu0 = res.mf_sequence.aggregate_s.mu[0]  # [E, S]
            per_env = ((res.br.disc_returns - res.policy_disc_returns) * mu0).sum(-1)
            z = getattr(res.mf_sequence.aggregate_s, "z", None)  # the common noise, if any
            evals.append(
                dict(
                    num_envs=n,
                    key=k,
                    exploitability=float(res.exploitability.exploitability),
                    policy_return=float(res.exploitability.mean_policy_return),
                    best_response_return=float(res.exploitability.mean_br_return),
                    per_env_exploitability=np.asarray(per_env).tolist(),
                    per_env_noise=None if z is None else np.asarray(z[0], float).tolist(),
                    seconds=time.perf_counter() - t0,
                )
            )
            print(
                f"published evaluator: {n} envs, key {k}: exploitability "
                f"{evals[-1]['exploitability']:.4f}",
                flush=True,
            )
            if traj is None:
                traj = res.mf_sequence

    # --- probes: normalised observation sequences [P, T, d] and the published probs ---
    obs_traj = agent.obs_normalizer(traj.aggregate_obs, agent.normalize_obs)  # [T, E, d]
    obs_traj = np.asarray(jnp.swapaxes(obs_traj, 0, 1))  # [E, T, d]
    lo, hi = float(obs_traj.min()), float(obs_traj.max())
    rng = np.random.default_rng(0)
    obs_rand = rng.uniform(lo - 0.1, hi + 0.1, size=(a.random_probes,) + obs_traj.shape[1:])
    probe_obs = np.concatenate([obs_traj, obs_rand.astype(np.float32)], axis=0)  # [P, T, d]
    # the network gets normalised inputs: call the policy without the wrapper's normaliser
    states = env.state_indices if a.state_type == "indices" else env.params.states
    states = agent.individual_s_normalizer(states, agent.normalize_individual_s)
    P = probe_obs.shape[0]
    probs = []
    if recurrent:
        hidden = agent.init_hidden(P)
        done = jnp.zeros((P,), bool)
        for t in range(T):
            p, hidden = agent.mf_policy.dist_prob(
                params, states, jnp.asarray(probe_obs[:, t]), hidden, done
            )
            probs.append(np.asarray(p))
    else:
        for t in range(T):
            probs.append(
                np.asarray(agent.mf_policy.dist_prob(params, states, jnp.asarray(probe_obs[:, t])))
            )
    probe_probs = np.stack(probs, axis=1)  # [P, T, S, A]
    np.savez(
        os.path.join(a.out, "probes.npz"),
        obs=probe_obs,
        probs=probe_probs,
        rollout_probs=np.asarray(jnp.swapaxes(traj.prob_a, 0, 1)),
    )  # [E, T, S, A]
    np.savez(os.path.join(a.out, "params.npz"), **flatten(params))

    info = dict(
        recurrent=recurrent,
        task=a.task,
        state_type=a.state_type,
        gamma=a.gamma,
        num_states=int(env.n_states),
        num_actions=int(env.n_actions),
        obs_dim=int(env.obs_dim),
        horizon=T,
        normalize_obs=bool(agent.normalize_obs),
        normalize_states=bool(agent.normalize_individual_s),
        evaluations=evals,
        param_shapes={k: list(v.shape) for k, v in flatten(params).items()},
        jax=jax.__version__,
    )
    with open(os.path.join(a.out, "published.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"exported to {a.out}", flush=True)


if __name__ == "__main__":
    main()
