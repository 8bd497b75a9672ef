"""BabyAI: minigrid's BabyAIBot, a planner that reads the level's grid and instruction.

The bot is rebuilt at every reset (it parses that episode's instruction) and `replan()` is called
once per step. It fails on KeyInBox and on the PutNext...Carrying levels (measured: 0% success),
which therefore have no expert.
"""

from __future__ import annotations

import gymnasium as gym

# Levels the bot cannot solve (every episode fails); see /work/shared/EXPERTS.md.
UNSOLVED_LEVELS = frozenset(
    {
        "babyai.key-in-box",
        "babyai.put-next-s5n2-carrying",
        "babyai.put-next-s6n3-carrying",
        "babyai.put-next-s7n4-carrying",
    }
)


def has_expert(task: str) -> bool:
    return task.startswith("babyai.") and task not in UNSOLVED_LEVELS


class BabyAIBotExpert:
    """Acts with `minigrid.utils.baby_ai_bot.BabyAIBot`, replanned every step."""

    def __init__(self, env: gym.Env):
        self.env = env
        self.bot = None

    def reset(self, env: gym.Env, observation: dict) -> None:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        self.env = env
        self.bot = BabyAIBot(env.unwrapped)

    def act(self, observation: dict) -> int:
        if self.bot is None:
            raise RuntimeError("call reset(env, observation) after env.reset() before act()")
        return int(self.bot.replan())


def make_expert(task: str, env: gym.Env, **kwargs) -> BabyAIBotExpert:
    return BabyAIBotExpert(env)
