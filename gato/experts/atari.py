"""Atari: controllers that read the console's RAM (positions of ball, paddles, boxers).

Actions index the full 18-action set the envs use (`ale_py.Action`); in Pong and Breakout RIGHT
moves the paddle up/right and LEFT down/left. With sticky actions (p = 0.25) the previous action
repeats at random, so the controllers aim slightly ahead of the ball.

RAM addresses (read after each step): Pong ball x 49, ball y 54, player paddle y 51; Breakout
ball x 99, ball y 101, paddle x 72; Boxing player x 32, player y 34, opponent x 33, opponent y 35.
"""

from __future__ import annotations

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


class PongExpert(_RamExpert):
    """Keeps the paddle's centre at the ball's height one step ahead (ball velocity from RAM)."""

    lead_steps = 1.0
    paddle_offset = 16  # paddle y (RAM) is its top edge; the ball meets it lower down
    deadband = 2

    def act(self, observation: dict) -> int:
        ram = self.ram()
        ball_x, ball_y, paddle_y = ram[49], ram[54], ram[51]
        if ball_y == 0 or self.previous is None:  # no ball on screen: serve and centre
            self.previous = (ball_x, ball_y)
            return FIRE
        velocity_y = ball_y - self.previous[1]
        self.previous = (ball_x, ball_y)
        target = ball_y + self.lead_steps * velocity_y
        error = target - (paddle_y + self.paddle_offset)
        if error > self.deadband:
            return LEFT  # down
        if error < -self.deadband:
            return RIGHT  # up
        return NOOP


class BreakoutExpert(_RamExpert):
    """Moves the paddle under the predicted landing point of the ball; FIRE serves."""

    paddle_offset = 8  # RAM paddle x is its left edge
    deadband = 3
    paddle_row = 185  # ball y (RAM) at the paddle's height
    left_wall, right_wall = 55, 191

    def act(self, observation: dict) -> int:
        ram = self.ram()
        ball_x, ball_y, paddle_x = ram[99], ram[101], ram[72]
        if ball_y == 0:  # ball not in play
            self.previous = None
            return FIRE
        if self.previous is None:
            self.previous = (ball_x, ball_y)
            return NOOP
        vx, vy = ball_x - self.previous[0], ball_y - self.previous[1]
        self.previous = (ball_x, ball_y)
        target = ball_x
        if vy > 0:  # falling: extrapolate to the paddle row, reflecting off the side walls
            steps = (self.paddle_row - ball_y) / vy
            span = self.right_wall - self.left_wall
            x = (ball_x - self.left_wall + vx * steps) % (2 * span)
            target = self.left_wall + (x if x <= span else 2 * span - x)
        error = target - (paddle_x + self.paddle_offset)
        if error > self.deadband:
            return RIGHT
        if error < -self.deadband:
            return LEFT
        return NOOP


class BoxingExpert(_RamExpert):
    """Lines up vertically with the opponent at punching distance and punches."""

    reach = 28  # horizontal distance at which punches land
    tolerance = 4

    def act(self, observation: dict) -> int:
        ram = self.ram()
        x, y, ox, oy = ram[32], ram[34], ram[33], ram[35]
        dx, dy = ox - x, oy - y
        side = 1 if dx > 0 else -1
        horizontal = dx - side * self.reach  # >0: step right to reach punching distance
        vertical = ""
        if dy > self.tolerance:
            vertical = "DOWN"
        elif dy < -self.tolerance:
            vertical = "UP"
        lateral = ""
        if horizontal > self.tolerance:
            lateral = "RIGHT"
        elif horizontal < -self.tolerance:
            lateral = "LEFT"
        punch = "FIRE" if abs(dy) <= self.tolerance and abs(horizontal) <= self.tolerance else ""
        name = vertical + lateral + punch
        return Action.__members__[name].value if name else NOOP


EXPERTS = {"atari.pong": PongExpert, "atari.breakout": BreakoutExpert, "atari.boxing": BoxingExpert}


def has_expert(task: str) -> bool:
    return task in EXPERTS


def make_expert(task: str, env: gym.Env, **kwargs):
    return EXPERTS[task](env)
