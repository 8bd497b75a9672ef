"""BabyAI: minigrid's BabyAIBot, a planner that reads the level's grid and instruction.

The bot is rebuilt at every reset (it parses that episode's instruction) and `replan()` is called
once per step. Levels it cannot solve have no expert: KeyInBox and the PutNext...Carrying levels
(0% success), the two OpenDoorsOrder ...-debug levels (35% and 10%, no better than random), and
GoToImpUnlock and UnlockToUnlock, where its planner can search forever (GoToImpUnlock seed 6 was
seen spinning for minutes in `_breadth_first_search`; experiments/results/experts.md). As a guard
for levels not yet measured, a single `replan()` that takes longer than `REPLAN_TIMEOUT_S` raises
an error instead of hanging a collection.

Under noise-injected collection (gato/experts/noise.py) the bot runs in its "advising mode": it is
told the action that really ran (`executed`), and plans from the state that action led to (for
instance turning back after a random turn). If a random action opens a box, the bot declares the
mission unsolvable (its `DisappearedBoxError`); the expert then gives up (`gave_up`) and answers
`done` for the rest of the episode, which then fails, earns nothing and so fails the 80% filter.
"""

from __future__ import annotations

import signal
import threading

import gymnasium as gym

# Levels the bot cannot solve (every episode fails); see /work/shared/EXPERTS.md.
UNSOLVED_LEVELS = frozenset(
    {
        "babyai.key-in-box",
        "babyai.put-next-s5n2-carrying",
        "babyai.put-next-s6n3-carrying",
        "babyai.put-next-s7n4-carrying",
        "babyai.open-doors-order-n2-debug",
        "babyai.open-doors-order-n4-debug",
        "babyai.go-to-imp-unlock",
        "babyai.unlock-to-unlock",
    }
)
REPLAN_TIMEOUT_S = 30.0


def has_expert(task: str) -> bool:
    return task.startswith("babyai.") and task not in UNSOLVED_LEVELS


class BabyAIBotExpert:
    """Acts with `minigrid.utils.baby_ai_bot.BabyAIBot`, replanned every step."""

    def __init__(self, env: gym.Env):
        self.env = env
        self.bot = None
        self.suggested: int | None = None
        self.taken: int | None = None  # the executed action, when it was not the suggested one
        self.gave_up = False

    def reset(self, env: gym.Env, observation: dict) -> None:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        self.env = env
        self.bot = BabyAIBot(env.unwrapped)
        self.suggested = self.taken = None
        self.gave_up = False

    def act(self, observation: dict) -> int:
        from minigrid.utils.baby_ai_bot import DisappearedBoxError

        if self.bot is None:
            raise RuntimeError("call reset(env, observation) after env.reset() before act()")
        if self.gave_up:
            return int(self.env.unwrapped.actions.done)
        taken, self.taken = self.taken, None
        try:
            self.suggested = int(_with_timeout(lambda: self.bot.replan(taken), REPLAN_TIMEOUT_S))
        except DisappearedBoxError:  # only after an executed action that was not the bot's
            self.gave_up = True
            return int(self.env.unwrapped.actions.done)
        return self.suggested

    def executed(self, action: int) -> None:
        """The action that ran after the last `act` (noise-injected collection). The bot's
        `replan(None)` means "my suggestion ran"; any other action is passed on."""
        action = int(action)
        self.taken = None if action == self.suggested else action


def _with_timeout(fn, seconds: float):
    """fn(), or a RuntimeError after `seconds` (SIGALRM: only in a process's main thread, which
    is where collection workers act; elsewhere fn runs unguarded)."""
    if threading.current_thread() is not threading.main_thread():
        return fn()

    def expire(signum, frame):
        raise RuntimeError(
            f"BabyAIBot planned for over {seconds:.0f} s without an action; this "
            "level's bot search does not terminate (see gato/experts/babyai.py)"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def make_expert(task: str, env: gym.Env, **kwargs) -> BabyAIBotExpert:
    return BabyAIBotExpert(env)
