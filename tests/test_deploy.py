"""`python -m gato.deploy`: end to end with a tiny checkpoint, video, checkpoint and task checks."""

import os
import time

import numpy as np
import pytest
import torch
from test_prompts import babyai_episode, cartpole_episode

from gato.checkpoint import CheckpointError, checkpoint_tasks, newest_checkpoint, save_checkpoint
from gato.config import get_config
from gato.deploy import DeployArgs, main
from gato.errors import UserError
from gato.model import Gato
from gato.prompts import PromptError, save_prompt

TASKS = ["cartpole.balance", "babyai.go-to-red-ball"]


def write_checkpoint(run_dir, step: int = 1, tasks=TASKS, sampler=False, state=None):
    """A debug checkpoint recording `tasks` as fine-tuning does (state['tasks']), or as
    gato.train does (state['sampler']['tasks'], a dict keyed by name) with `sampler`; `state`
    replaces either."""
    torch.manual_seed(0)
    cfg = get_config("debug", block_size=256)  # a whole BabyAI timestep (~155 tokens) fits
    if state is not None:
        pass
    elif tasks is None:
        state = {}
    elif sampler:
        state = {"sampler": {"tasks": {t: {"weight": 1.0} for t in tasks}}}
    else:
        state = {"tasks": tasks}
    return save_checkpoint(run_dir, step, Gato(cfg).state_dict(), cfg, state=state)


@pytest.fixture
def setup(tmp_path):
    write_checkpoint(tmp_path / "runs" / "r1")
    demo = save_prompt(tmp_path / "demo.pkl", cartpole_episode(30), "cartpole.balance")
    return tmp_path, demo


def test_deploy_end_to_end(setup, capsys):
    tmp, demo = setup
    argv = [
        "--prompt",
        str(demo),
        "--runs-dir",
        str(tmp / "runs"),
        "--episodes",
        "2",
        "--max-steps",
        "4",
        "--seed",
        "3",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "episode 1/2: return" in out and "episode 2/2: return" in out
    assert "% of expert" in out and "ms/action" in out and "Hz" in out
    assert "4 steps" in out
    # Greedy, without the cache, with an explicit checkpoint: the same command shape works.
    ckpt = str(newest_checkpoint(tmp / "runs"))
    assert (
        main(
            [
                "--prompt",
                str(demo),
                "--checkpoint",
                ckpt,
                "--greedy",
                "--no-cache",
                "--max-steps",
                "3",
                "--context-tokens",
                "16",
                "--prompt-tokens",
                "8",
            ]
        )
        == 0
    )


def test_deploy_writes_a_playable_video(tmp_path, capsys):
    import imageio.v2 as imageio

    write_checkpoint(tmp_path / "runs" / "r1")
    demo = save_prompt(tmp_path / "demo.json", babyai_episode(6), "babyai.go-to-red-ball")
    video = tmp_path / "out.mp4"
    argv = [
        "--prompt",
        str(demo),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--episodes",
        "2",
        "--max-steps",
        "5",
        "--video",
        str(video),
        "--temperature",
        "0.5",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"wrote {video}" in out
    assert video.stat().st_size > 0
    reader = imageio.get_reader(video)
    frames = reader.count_frames()
    first = reader.get_data(0)
    reader.close()
    # A reset frame plus one per step, per episode (episodes may end before 5 steps).
    assert 4 <= frames <= 12 and f"({frames} frames" in out
    assert first.ndim == 3 and first.shape[2] == 3 and first.std() > 0


def test_newest_checkpoint_is_by_time_across_runs(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint under"):
        newest_checkpoint(tmp_path / "runs")
    old = write_checkpoint(tmp_path / "runs" / "b", step=900)
    new = write_checkpoint(tmp_path / "runs" / "a", step=5)
    past = time.time() - 100
    os.utime(old / "manifest.json", (past, past))
    assert newest_checkpoint(tmp_path / "runs") == new
    # By task: the newest checkpoint whose recorded tasks include it, as gato.train records
    # them (the sampler's state) or as fine-tuning does (a list); JAT aliases count.
    only_pong = write_checkpoint(
        tmp_path / "runs" / "c", step=3, tasks=["atari.pong"], sampler=True
    )
    assert checkpoint_tasks({"sampler": {"tasks": {"atari.pong": {}}}}) == ["atari.pong"]
    assert newest_checkpoint(tmp_path / "runs") == only_pong
    assert newest_checkpoint(tmp_path / "runs", task="cartpole.balance") == new
    assert newest_checkpoint(tmp_path / "runs", task="atari-pong") == only_pong
    with pytest.raises(CheckpointError, match="trained on 'metaworld.reach'"):
        newest_checkpoint(tmp_path / "runs", task="metaworld.reach")


def test_clear_errors(setup, tmp_path, capsys):
    tmp, demo = setup
    runs = ["--runs-dir", str(tmp / "runs"), "--max-steps", "2"]
    # The prompt is a demonstration of another task.
    with pytest.raises(PromptError, match="not of 'cartpole.swingup'"):
        main(["--prompt", str(demo), "--task", "cartpole.swingup", *runs])
    # No checkpoint anywhere.
    with pytest.raises(UserError, match="no checkpoint under"):
        main(["--prompt", str(demo), "--runs-dir", str(tmp / "nothing")])
    # A task the checkpoint was not trained on, unless allowed. Without --checkpoint the newest
    # checkpoint trained on the task is picked (r1), not the newest one (r2).
    r2 = write_checkpoint(tmp / "runs" / "r2", tasks=["babyai.go-to-red-ball"], sampler=True)
    assert main(["--prompt", str(demo), *runs]) == 0
    assert "runs/r1/" in capsys.readouterr().out
    with pytest.raises(UserError, match="not trained on 'cartpole.balance'"):
        main(["--prompt", str(demo), "--checkpoint", str(r2), *runs[2:]])
    assert main(["--prompt", str(demo), "--checkpoint", str(r2), "--allow-unseen-task"]) == 0
    # A context shorter than one timestep (cartpole: 5 + '|' + 1 = 7 tokens) is refused.
    with pytest.raises(UserError, match=r"cartpole.balance.*7 tokens"):
        main(["--prompt", str(demo), "--context-tokens", "6", *runs])
    # A prompt with the wrong observation layout.
    bad = tmp / "bad.pkl"
    import pickle

    data = pickle.loads(demo.read_bytes())
    data["episode"]["observations"]["continuous_observations"] = np.zeros((30, 3), np.float32)
    bad.write_bytes(pickle.dumps(data))
    with pytest.raises(PromptError, match=r"continuous_observations has shape \(30, 3\)"):
        main(["--prompt", str(bad), "--allow-unseen-task", *runs])


@pytest.mark.parametrize(
    "flags, names",
    [
        (["--max-steps", "0"], "--max-steps must be at least 1, got 0"),
        (["--context-tokens", "-5"], "--context-tokens must be at least 1, got -5"),
        (["--prompt-tokens", "-1"], "--prompt-tokens must be at least 0, got -1"),
        (["--temperature", "-0.5"], "--temperature must be at least 0, got -0.5"),
        (["--temperature", "nan"], "--temperature must be at least 0, got nan"),
        (["--episodes", "0"], "--episodes must be at least 1, got 0"),
    ],
)
def test_values_that_cannot_work_are_refused_naming_the_flag(setup, flags, names):
    """Nothing is clamped: --max-steps 0 used to mean "no cap", a negative context ran."""
    tmp, demo = setup
    with pytest.raises(UserError) as e:
        main(["--prompt", str(demo), "--runs-dir", str(tmp / "runs"), *flags])
    assert str(e.value) == names


def test_an_unwritable_video_is_refused_before_the_rollout(setup, tmp_path):
    tmp, demo = setup
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = ["--prompt", str(demo), "--runs-dir", str(tmp / "runs"), "--max-steps", "2"]
    with pytest.raises(UserError, match=r"--video .*a-file/out.mp4 cannot be written"):
        main([*argv, "--video", str(blocker / "out.mp4")])
    with pytest.raises(UserError, match=r"unknown video format \.txt"):
        main([*argv, "--video", str(tmp_path / "out.txt")])
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UserError, match="dir.mp4 is a folder"):
        main([*argv, "--video", str(tmp_path / "dir.mp4")])
    existing = tmp_path / "keep.mp4"
    existing.write_bytes(b"old")
    from gato.deploy import check_video_path

    assert check_video_path(existing) == existing and existing.read_bytes() == b"old"
    assert check_video_path(tmp_path / "new" / "v.gif") and not (tmp_path / "new/v.gif").exists()


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in DeployArgs.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in text
    assert "KV cache" in text and "newest checkpoint" in text


def test_deploy_rolls_a_packed_checkpoint_out_in_its_training_window(tmp_path, capsys):
    """Its sampler state records a 14-token cartpole window and a 7-token prompt budget:
    deployment defaults to window memory over that window, and says so."""
    sampler = {
        "tasks": {"cartpole.balance": {}},
        "window_tokens": {"cartpole.balance": 14},
        "config": {"prompt_prob": 0.25, "max_prompt_frac": 0.5, "window_steps": 2},
    }
    write_checkpoint(tmp_path / "runs" / "r1", state={"sampler": sampler})
    demo = save_prompt(tmp_path / "demo.pkl", cartpole_episode(30), "cartpole.balance")
    argv = ["--prompt", str(demo), "--runs-dir", str(tmp_path / "runs"), "--max-steps", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "context 14 tokens (window memory), prompt 7 tokens" in out
    assert "3 steps" in out
