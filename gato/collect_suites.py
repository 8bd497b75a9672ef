"""The collection suites of ``python -m gato.collect --suite NAME``: tasks and volumes."""

from __future__ import annotations

from typing import Any

# Suites. Collection times: one core runs an episode through this collector in about 0.1-0.15 s
# for cartpole (1,000 steps), 0.26 s for Meta-World (500 steps at ~1,900 steps/s), 0.005-0.02 s
# for BabyAI (GoToRedBall ~6 steps, Open ~30) and ~10 s for a full Pong game (../shared/EXPERTS.md
# speeds); measured here on 2026-12-01 while a training run shared the 2 cores, 0.37 s, 0.45-1.1 s,
# 0.008-0.044 s. Each task also starts its worker processes (2-4 s).
#
# "default" (`make data`): volumes near the paper's per task (GATO_SPEC.md section 9: ~2,000 per
# Meta-World task, ~100,000 per BabyAI level, ~13,000 per DM Control task) wherever the expert is
# cheap: 5,000 episodes per BabyAI level and 1,000 per Meta-World and cartpole task. About 2,800
# core-seconds (Meta-World three quarters of it): ~25 minutes on 2 idle cores, ~50 minutes at the
# loaded speeds above. Pong stays at 4 full games (80x80 RGB frames, ~10 s each): a step cap would
# cut games short and bias its expert and random returns, so it gets a few whole games. Random
# returns are averaged over more episodes where episodes are cheap (BabyAI).
#
# "quick" (the demo, tests, a first look): the same tasks without the heavy ones (Pong's full
# games; Meta-World assembly, held out of pretraining anyway), 10-30 episodes each: about a minute
# on 2 idle cores, mostly worker start-up (122 s measured with the cores shared as above).
_DEFAULT_RANDOM = {"cartpole": 10, "metaworld": 10, "babyai": 100, "atari": 2}
_TASKS = (
    "cartpole.balance",
    "cartpole.swingup",
    "metaworld.reach",
    "metaworld.push",
    "metaworld.button-press",
    "metaworld.door-open",
    "metaworld.drawer-close",
    "metaworld.window-open",
    "metaworld.assembly",
    "babyai.go-to-red-ball",
    "babyai.go-to-local",
    "babyai.pickup-loc",
    "babyai.open",
    "atari.pong",
)
_DEFAULT_EPISODES = {"cartpole": 1000, "metaworld": 1000, "babyai": 5000, "atari": 4}
_QUICK_EPISODES = {"cartpole": 10, "metaworld": 10, "babyai": 30}
_QUICK_RANDOM = {"cartpole": 3, "metaworld": 3, "babyai": 10}


def _family(task: str) -> str:
    return task.split(".")[0]


SUITES: dict[str, dict[str, dict[str, Any]]] = {
    "default": {
        t: {
            "episodes": _DEFAULT_EPISODES[_family(t)],
            "random_episodes": _DEFAULT_RANDOM[_family(t)],
        }
        for t in _TASKS
    },
    "quick": {
        t: {"episodes": _QUICK_EPISODES[_family(t)], "random_episodes": _QUICK_RANDOM[_family(t)]}
        for t in _TASKS
        if t not in ("atari.pong", "metaworld.assembly")
    },
}
