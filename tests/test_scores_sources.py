"""Issue 15 item 4: every score-table entry says where its expert and random returns came from."""

from __future__ import annotations

from gato import scores
from gato.datasets import write_json_atomic


def _meta(task: str, **extra) -> dict:
    return {
        "task": task,
        "complete": True,
        "policy": "expert",
        "expert_return": 10.0,
        "expert_window": 1,
        "random_return": 1.0,
        "random_returns": [1.0, 1.0],
        "episodes": 5,
        "success_rate": None,
        **extra,
    }


def test_entries_name_the_hub_or_the_collection_and_the_env(tmp_path):
    data = tmp_path / "data"
    hub = "hub:jat-project/jat-dataset/mujoco-ant"
    write_json_atomic(data / "mujoco.ant" / "metadata.json", _meta("mujoco.ant", source=hub))
    write_json_atomic(data / "cartpole.balance" / "metadata.json", _meta("cartpole.balance"))
    write_json_atomic(data / "own.task" / "metadata.json", _meta("own.task"))
    table = scores.table_from_data(data)
    ant = scores.score_source("mujoco-ant", table)  # by JAT alias too
    assert ant["expert"] == f"windowed expert return (window 1) over 5 episodes from {hub}"
    assert ant["random"] == "mean of 2 random-policy rollouts here"
    assert ant["env"].startswith("Ant-v4 (gymnasium ")
    cartpole = scores.score_source("cartpole.balance", table)
    assert "from gato.collect's expert, here" in cartpole["expert"]
    assert cartpole["env"].startswith("cartpole.balance (dm_control ")
    assert "env" not in scores.score_source("own.task", table)  # not registered: no env to name


def test_older_entries_say_their_source_was_not_recorded():
    table = {"atari.pong": {"random": -21.0, "expert": 19.0}}
    assert "source not recorded" in scores.score_source("atari.pong", table)["expert"]
