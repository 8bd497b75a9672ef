"""Atari: controllers that read the console's RAM (positions of ball, paddles, boxers).

Actions index the full 18-action set the envs use (`ale_py.Action`); in Pong and Breakout only
RIGHT and LEFT move the paddle (checked by stepping: in Pong RIGHT raises it, LEFT lowers it;
UP and DOWN do nothing). With sticky actions (p = 0.25) the previous action repeats at random.
The paddles have momentum, so Pong and Breakout plan the paddle's motion (`_PaddlePlanner`).
Parameters were tuned on short runs (seeds 0-5) with sticky actions; the measured scores are in
experiments/results/experts.md.

RAM addresses (read after each step): Pong ball x 49, ball y 54, player paddle y 51; Breakout
ball x 99, ball y 101, paddle x 72; Boxing player x 32, player y 34, opponent x 33, opponent y 35.
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
from ale_py import Action

NOOP, FIRE = Action.NOOP.value, Action.FIRE.value
UP, DOWN, RIGHT, LEFT = Action.UP.value, Action.DOWN.value, Action.RIGHT.value, Action.LEFT.value


class _RamExpert:
    def __init__(self, env: gym.Env):
        self.ale = env.unwrapped.ale
        self.previous = None

    def reset(self, env: gym.Env, observation: dict) -> None:
        self.ale = env.unwrapped.ale
        self.previous = None

    def ram(self) -> np.ndarray:
        return self.ale.getRAM().astype(np.int64)


class _PaddlePlanner(_RamExpert):
    """Plans a paddle with momentum: where will it be when the ball arrives?

    The paddles of Pong and Breakout respond to an action over three steps (measured here by
    least squares on random play: `response`). Each step the planner searches all action
    sequences of the next `horizon` steps for the one that puts the paddle at the target at the
    predicted time (ties broken towards fewer presses) and takes its first action. Sticky actions
    (the previous action repeats at random) make the actions that ran differ from those chosen,
    so their effective values are re-estimated from the paddle's observed motion each step.
    """

    response: tuple[float, float, float]  # displacement from the actions of steps t, t-1, t-2
    paddle_min: int
    paddle_max: int
    plus: int  # the action that increases the paddle's RAM coordinate
    minus: int
    horizon = 5
    effort = 0.5  # cost of a press, in RAM units of position error

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.sequences = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=self.horizon)))
        self.weights = [self._weights(steps) for steps in range(self.horizon + 3)]
        self.reset(env, {})

    def reset(self, env: gym.Env, observation: dict) -> None:
        super().reset(env, observation)
        self.previous_paddle = None
        self.effective = [0.0, 0.0]  # effective actions of steps t-1 and t-2
        self.last = 0.0

    def _weights(self, steps: int) -> np.ndarray:
        """Displacement after `steps` steps caused by each action of a planned sequence."""
        weights = np.zeros(self.horizon)
        for k in range(self.horizon):
            for lag, w in enumerate(self.response):
                if k + lag < steps:
                    weights[k] += w
        return weights

    def plan(self, paddle: int, target: float, steps: int) -> int:
        """The action that brings `paddle` to `target` in `steps` steps (and keeps it there)."""
        if self.previous_paddle is not None:
            inside = self.paddle_min < paddle < self.paddle_max
            inside = inside and self.paddle_min < self.previous_paddle < self.paddle_max
            if inside:  # invert the response model for the action that really ran
                w0, w1, w2 = self.response
                moved = paddle - self.previous_paddle
                ran = (moved - w1 * self.effective[0] - w2 * self.effective[1]) / w0
                ran = float(np.clip(ran, -1.0, 1.0))
            else:  # against a wall the motion says nothing
                ran = self.last
            self.effective = [ran, self.effective[0]]
        self.previous_paddle = paddle
        e1, e2 = self.effective
        _, w1, w2 = self.response
        committed = w1 * e1 + w2 * e2 + (w2 * e1 if steps >= 2 else 0.0)
        weights = self.weights[min(steps, len(self.weights) - 1)]
        position = paddle + committed + self.sequences @ weights
        cost = np.abs(position - target) + self.effort * np.abs(self.sequences).sum(1)
        self.last = float(self.sequences[int(np.argmin(cost)), 0])
        return {-1.0: self.minus, 0.0: NOOP, 1.0: self.plus}[self.last]


def _fold(value: float, low: float, high: float) -> float:
    """`value` reflected into [low, high], as a ball bouncing between two walls."""
    span = high - low
    folded = (value - low) % (2 * span)
    return low + (folded if folded <= span else 2 * span - folded)


class PongExpert(_PaddlePlanner):
    """Meets the ball where it will cross the paddle's column (predicted from its velocity,
    reflecting off the top and bottom walls); the paddle waits at the centre otherwise.

    `aim` is the ball's height minus the paddle's RAM height at contact: returns land for aims of
    about 4-10 (measured), fail outside 2-12, and hits off centre make the computer miss more.
    """

    response = (10.0, 9.4, 0.9)
    paddle_min, paddle_max = 38, 203
    plus, minus = LEFT, RIGHT  # LEFT lowers the paddle (RAM y grows), RIGHT raises it
    aim = 7
    paddle_column = 188  # ball x (RAM) at which the player's paddle meets the ball
    top, bottom = 46, 205  # ball y (RAM) where it bounces off the walls
    centre = 125

    def _target(self, ball_x: int, ball_y: int) -> tuple[float, int]:
        """The ball height the paddle should meet, and in how many steps."""
        if ball_y == 0:  # no ball on screen
            self.previous = None
            return self.centre, 8
        if self.previous is None:
            self.previous = (ball_x, ball_y)
            return ball_y, 8
        vx, vy = ball_x - self.previous[0], ball_y - self.previous[1]
        self.previous = (ball_x, ball_y)
        if vx <= 0:
            return self.centre, 8
        if ball_x >= self.paddle_column:
            return ball_y + vy, 1
        steps = max(1, int(np.ceil((self.paddle_column - ball_x) / vx)))
        return _fold(ball_y + vy * steps, self.top, self.bottom), steps

    def act(self, observation: dict) -> int:
        ram = self.ram()
        target, steps = self._target(int(ram[49]), int(ram[54]))
        return self.plan(int(ram[51]), target - self.aim, steps)


class BreakoutExpert(_PaddlePlanner):
    """Meets the ball where it will come down to the paddle's row (predicted from its velocity,
    reflecting off the side walls); follows the ball while it rises; FIRE serves."""

    response = (12.2, 10.0, 0.6)
    paddle_min, paddle_max = 55, 191
    plus, minus = RIGHT, LEFT
    aim = 12  # ball x minus paddle x (its left edge) at contact
    paddle_row = 176  # ball y (RAM) at which it bounces off the paddle
    left_wall, right_wall = 56, 199  # ball x (RAM) where it bounces off the walls

    def act(self, observation: dict) -> int:
        ram = self.ram()
        ball_x, ball_y, paddle_x = int(ram[99]), int(ram[101]), int(ram[72])
        if ball_y == 0:  # ball not in play
            self.previous = None
            self.plan(paddle_x, paddle_x, 8)  # keeps the motion estimate current
            self.last = 0.0  # FIRE does not move the paddle
            return FIRE
        if self.previous is None:
            self.previous = (ball_x, ball_y)
            return self.plan(paddle_x, ball_x - self.aim, 8)
        vx, vy = ball_x - self.previous[0], ball_y - self.previous[1]
        self.previous = (ball_x, ball_y)
        target, steps = ball_x + vx, 8
        if vy > 0 and ball_y < self.paddle_row:
            steps = max(1, int(np.ceil((self.paddle_row - ball_y) / vy)))
            target = _fold(ball_x + vx * steps, self.left_wall, self.right_wall)
        return self.plan(paddle_x, target - self.aim, steps)


class BoxingExpert(_RamExpert):
    """Stands diagonally off the opponent at punching distance and punches.

    Measured on random play: punches score with the opponent `reach` (about 14-31) RAM units
    away horizontally and 8-27 vertically; squarely in line (|dy| < 5) they never land. The
    boxer keeps to the opponent's current vertical side at `offset` rows and punches whenever
    the opponent is within the scoring window, moving at the same time.
    """

    reach = 22  # horizontal distance to keep
    offset = 16  # vertical distance to keep
    tolerance = 3
    window_x = (15, 30)  # punch when |dx| and |dy| are inside these windows
    window_y = (7, 22)

    def act(self, observation: dict) -> int:
        ram = self.ram()
        x, y, ox, oy = ram[32], ram[34], ram[33], ram[35]
        dx, dy = ox - x, oy - y
        side_x = 1 if dx > 0 else -1
        side_y = 1 if dy >= 0 else -1
        horizontal = dx - side_x * self.reach  # >0: step right
        vertical = dy - side_y * self.offset  # >0: step down
        name = ""
        if vertical > self.tolerance:
            name += "DOWN"
        elif vertical < -self.tolerance:
            name += "UP"
        if horizontal > self.tolerance:
            name += "RIGHT"
        elif horizontal < -self.tolerance:
            name += "LEFT"
        in_x = self.window_x[0] <= abs(dx) <= self.window_x[1]
        in_y = self.window_y[0] <= abs(dy) <= self.window_y[1]
        if in_x and in_y:
            name += "FIRE"
        return Action.__members__[name].value if name else NOOP


EXPERTS = {"atari.pong": PongExpert, "atari.breakout": BreakoutExpert, "atari.boxing": BoxingExpert}


def has_expert(task: str) -> bool:
    return task in EXPERTS


def make_expert(task: str, env: gym.Env, **kwargs):
    return EXPERTS[task](env)
