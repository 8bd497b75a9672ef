"""Gymnasium MuJoCo: Soft Actor-Critic experts (stable-baselines3), trained here and loaded.

Train (saves the model; evaluates it periodically):

    python -m gato.experts.sac --task mujoco.hopper --steps 300000 --out experts/mujoco.hopper.zip

Full training takes about 1 h per 300k steps per CPU core on a 2-core machine. The expert acts
deterministically (the mean of the Gaussian policy) from the same float32 observation vector the
env gives Gato; it is loaded from `experts/<task>.zip` (or `model_path=`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import gymnasium as gym
import numpy as np

from gato.envs import CONTINUOUS_OBS, get_task, make_env

DEFAULT_DIR = Path(os.environ.get("GATO_EXPERTS_DIR", "experts"))


def default_path(task: str) -> Path:
    return DEFAULT_DIR / f"{task}.zip"


def has_expert(task: str) -> bool:
    return task.startswith("mujoco.") and default_path(task).exists()


class VectorObservation(gym.ObservationWrapper):
    """The dict observation's `continuous_observations` vector, for stable-baselines3."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = env.observation_space[CONTINUOUS_OBS]

    def observation(self, observation):
        return observation[CONTINUOUS_OBS]


class SACExpert:
    """A trained SAC policy acting deterministically."""

    def __init__(self, model_path: str | Path):
        from stable_baselines3 import SAC

        self.model = SAC.load(str(model_path), device="cpu")

    def reset(self, env: gym.Env, observation: dict) -> None:
        pass

    def act(self, observation: dict) -> np.ndarray:
        action, _ = self.model.predict(observation[CONTINUOUS_OBS], deterministic=True)
        return np.asarray(action, np.float32)


def make_expert(
    task: str, env: gym.Env, model_path: str | Path | None = None, **kwargs
) -> SACExpert:
    path = Path(model_path) if model_path else default_path(task)
    if not path.exists():
        raise ValueError(
            f"no trained SAC expert at {path}; train one with "
            f"`python -m gato.experts.sac --task {task} --out {path}`"
        )
    return SACExpert(path)


def train(
    task: str,
    steps: int,
    out: Path,
    seed: int = 0,
    eval_every: int = 10_000,
    eval_episodes: int = 5,
) -> float:
    """Trains SAC with stable-baselines3's default settings, saves it to `out`, and returns the
    final deterministic evaluation return."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    info = get_task(task)
    if info.family != "mujoco":
        raise ValueError(f"SAC experts are for mujoco.* tasks, got {info.name!r}")
    env = Monitor(VectorObservation(make_env(info.name, seed=seed)))
    eval_env = Monitor(VectorObservation(make_env(info.name, seed=seed + 1000)))
    out.parent.mkdir(parents=True, exist_ok=True)
    model = SAC(
        "MlpPolicy",
        env,
        seed=seed,
        verbose=0,
        device="cpu",
        learning_starts=min(10_000, max(steps // 10, 100)),
    )
    callback = EvalCallback(
        eval_env,
        n_eval_episodes=eval_episodes,
        eval_freq=min(eval_every, steps),
        deterministic=True,
        verbose=1,
    )
    model.learn(total_timesteps=steps, callback=callback, progress_bar=True)
    model.save(str(out))
    from gato.rollout import PerEnvActor, RolloutJob, run_rollouts

    jobs = [RolloutJob(info.name, e, 10_000 + e) for e in range(eval_episodes)]
    actor = PerEnvActor(lambda job, env: _Deterministic(model))
    returns = [r.episode_return for r in run_rollouts([eval_env], actor, info, jobs)]
    print(
        f"{info.name}: {steps} steps, saved {out}; deterministic return over "
        f"{eval_episodes} episodes {np.mean(returns):.1f} +/- {np.std(returns):.1f}"
    )
    return float(np.mean(returns))


class _Deterministic:
    """An SB3 model's deterministic action, as a per-episode policy of gato.rollout."""

    def __init__(self, model):
        self.model = model

    def reset(self, env, observation) -> None:
        pass  # SAC's actor is memoryless

    def act(self, observation):
        return self.model.predict(observation, deterministic=True)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gato.experts.sac",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", required=True, help="a mujoco.* task, e.g. mujoco.hopper")
    parser.add_argument("--steps", type=int, default=300_000, help="environment steps")
    parser.add_argument("--out", type=Path, help="where to save (default experts/<task>.zip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-every", type=int, default=10_000, help="steps between periodic evaluations"
    )
    args = parser.parse_args(argv)
    task = get_task(args.task).name
    train(task, args.steps, args.out or default_path(task), args.seed, args.eval_every)


if __name__ == "__main__":
    main()
