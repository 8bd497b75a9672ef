"""Issue 13 item 7: every command answers a bad input with one line and exit status 2.

Each case is a command and its bad input; what the line must name (the flag, the file or the
task). In-process through gato.errors.run_command (what every `__main__` runs) for speed, and as
real `python -m` subprocesses (marked slow: each import of a command takes seconds here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_prompts import cartpole_episode

from gato.checkpoint import save_checkpoint
from gato.config import get_config
from gato.errors import UserError, run_command
from gato.model import Gato
from gato.prompts import save_prompt

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A checkpoint trained (by its record) on cartpole.balance, a corrupted copy of it (one
    flipped byte in the weights), a prompt file, a plain file and an empty folder."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    cfg = get_config("debug", block_size=64)
    good = save_checkpoint(
        root / "run", 1, Gato(cfg).state_dict(), cfg, state={"tasks": ["cartpole.balance"]}
    )
    corrupt = root / "corrupt"
    shutil.copytree(good, corrupt)
    weights = corrupt / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    (root / "empty").mkdir()
    (root / "a-file").write_text("not a folder")
    prompt = save_prompt(root / "demo.pkl", cartpole_episode(30), "cartpole.balance")
    return {"ckpt": good, "corrupt": corrupt, "prompt": prompt, "root": root}


def _argv(files, *parts) -> list[str]:
    """`{name}` in a part becomes that fixture path."""
    names = {k: str(v) for k, v in files.items()}
    return [p.format(**names) for p in parts]


DEPLOY = ("--prompt", "{prompt}", "--checkpoint", "{ckpt}", "--max-steps", "1")
EVALUATE = ("--checkpoint", "{ckpt}", "--tasks", "cartpole.balance", "--workers", "1")
FINETUNE = ("--scratch", "--size", "debug", "--steps", "1", "--run-dir", "{root}/ft-run")
TRAIN = ("--size", "tiny", "--seq-len", "64", "--batch-size", "2", "--steps", "1",
         "--num-workers", "0", "--device", "cpu", "--run-dir", "{root}/train-run")  # fmt: skip
COLLECT = ("--data-dir", "{root}/collected", "--episodes", "1", "--task")

# (module, argv, what the one line must contain)
CASES = [
    ("deploy", ("--prompt", "{prompt}", "--checkpoint", "{corrupt}"), ["{corrupt}", "corrupted"]),
    ("deploy", (*DEPLOY, "--video", "{root}/a-file/out.mp4"), ["--video", "cannot be written"]),
    ("deploy", (*DEPLOY, "--context-tokens", "-5"), ["--context-tokens must be at least 1"]),
    ("deploy", (*DEPLOY, "--temperature", "-1"), ["--temperature must be at least 0"]),
    ("deploy", (*DEPLOY, "--prompt-tokens", "-1"), ["--prompt-tokens must be at least 0"]),
    ("deploy", (*DEPLOY, "--max-steps", "0"), ["--max-steps must be at least 1, got 0"]),
    ("deploy", (*DEPLOY, "--task", "cartpole.nope"), ["--task", "unknown task 'cartpole.nope'"]),
    ("deploy", (*DEPLOY, "--context-tokens", "6"), ["cartpole.balance", "7 tokens"]),
    ("evaluate", ("--checkpoint", "{corrupt}"), ["{corrupt}", "corrupted"]),
    ("evaluate", (*EVALUATE, "--data-dir", "{root}/nope"), ["--data-dir", "does not exist"]),
    ("evaluate", (*EVALUATE, "--data-dir", "{root}/a-file"), ["--data-dir", "is a file"]),
    ("evaluate", (*EVALUATE, "--max-steps", "0"), ["--max-steps must be at least 1"]),
    ("evaluate", (*EVALUATE, "--temperature", "-2"), ["--temperature must be at least 0"]),
    ("evaluate", ("--checkpoint", "{ckpt}", "--tasks", "nope.x"), ["--tasks", "'nope.x'"]),
    ("finetune", (*FINETUNE, "--task", "cartpole.nope"), ["--task", "unknown task"]),
    (
        "finetune",
        ("--ckpt", "{corrupt}", "--task", "cartpole.swingup", "--data-dir", "{root}/empty"),
        ["--ckpt", "{corrupt}", "corrupted"],
    ),
    ("finetune", (*FINETUNE, "--data-dir", "{root}/nope"), ["--data-dir", "does not exist"]),
    ("finetune", (*FINETUNE, "--data-dir", "{root}/a-file"), ["--data-dir", "is a file"]),
    ("finetune", (*FINETUNE, "--data-dir", "{root}/empty"), ["no collected data", "make data"]),
    ("prompts", ("--task", "nope.x", "--out", "{root}/p.pkl"), ["--task", "'nope.x'"]),
    (
        "prompts",
        ("--task", "cartpole.balance", "--out", "{root}/p.pkl", "--data-dir", "{root}/a-file"),
        ["--data-dir", "is a file"],
    ),
    ("prompts", ("--task", "cartpole.balance", "--out", "{root}/p.txt"), ["--out", "format"]),
    ("demo", ("--tasks", "cartpole.balance,nope.x", "--out", "{root}/d"), ["--tasks", "nope.x"]),
    ("deploy", (*DEPLOY, "--max-steps", "x"), ["--max-steps", "invalid int value: 'x'"]),
    (  # the probe: a 64-token context on BabyAI, whose timestep is 155 tokens
        "deploy",
        (
            "--task",
            "babyai.go-to-red-ball",
            "--checkpoint",
            "{ckpt}",
            "--allow-unseen-task",
            "--context-tokens",
            "64",
            "--max-steps",
            "1",
        ),
        ["babyai.go-to-red-ball", "155 tokens", "64-token context"],
    ),  # fmt: skip
    ("train", (*TRAIN, "--data-dir", "{root}/nope"), ["--data-dir", "does not exist"]),
    ("train", (*TRAIN, "--data-dir", "{root}/a-file"), ["--data-dir", "is a file"]),
    ("train", (*TRAIN, "--data-dir", "{root}/empty"), ["no collected tasks", "make data"]),
    (
        "train",
        (*TRAIN, "--data-dir", "{root}/empty", "--tasks", "cartpole.nope"),
        ["--tasks", "unknown task 'cartpole.nope'", "cartpole.balance"],
    ),
    (
        "train",
        (*TRAIN, "--data-dir", "{root}/empty", "--tasks", "cartpole.swingup"),
        ["--tasks", "no collected data for task 'cartpole.swingup'", "make data"],
    ),
    (
        "train",
        (*TRAIN, "--data-dir", "{root}/empty", "--task-weights", "dmc"),
        ["--task-weights", "'dmc' is not name=float"],
    ),
    (
        "train",
        (*TRAIN, "--data-dir", "{root}/empty", "--task-window-steps", "babyai=1.5"),
        ["--task-window-steps", "'babyai=1.5' is not name=int"],
    ),
    (
        "train",
        (*TRAIN, "--data-dir", "{root}/empty", "--max-prompt-frac", "1.5"),
        ["max_prompt_frac must be in [0, 1), got 1.5"],
    ),
    ("train", (*TRAIN, "--steps", "0"), ["--steps"]),
    ("train", (*TRAIN, "--steps", "abc"), ["--steps", "invalid int value: 'abc'"]),
    ("train", ("--size", "tiny", "--resume"), ["--resume needs --run-dir"]),
    ("collect", (*COLLECT, "nope.x"), ["--task", "unknown task 'nope.x'", "--list"]),
    (
        "collect",
        (*COLLECT, "cartpole.balance", "--episodes", "0"),
        ["--episodes must be at least 1"],
    ),
    ("collect", (*COLLECT, "cartpole.balance", "--epsilon", "0.1"), ["--noise"]),
    (
        "collect",
        ("--task", "cartpole.balance", "--episodes", "1", "--data-dir", "{root}/a-file"),
        ["cannot write into", "a-file/cartpole.balance"],
    ),
    ("envs", ("--list", "--family", "nope"), ["--family", "invalid choice: 'nope'"]),
    ("experts.measure", ("--tasks", "nope.x"), ["--tasks", "unknown task 'nope.x'"]),
    ("experts.measure", ("--tasks", "dmc", "--episodes", "0"), ["--episodes must be at least 1"]),
    ("bench", ("--out", "{root}/a-file", "--suite", "data"), ["--out", "{root}/a-file", "cannot"]),
]
# Commands whose main() lives in a package's __main__.
MAINS = {"envs": "gato.envs.__main__", "bench": "gato.bench.__main__"}
IDS = [f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)]


def _check_line(err: str, prog: str, wanted: list[str], files) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    for piece in _argv(files, *wanted):
        assert piece in lines[0], (piece, err)


@pytest.mark.parametrize("module, argv, wanted", CASES, ids=IDS)
def test_bad_input_is_one_line_and_exit_2(files, module, argv, wanted, capsys):
    import importlib

    prog = f"python -m gato.{module}"
    main = importlib.import_module(MAINS.get(module, f"gato.{module}")).main
    try:
        status = run_command(main, _argv(files, *argv), prog)
    except SystemExit as e:  # argparse's usage errors exit through the parser itself
        status = e.code
    assert status == 2
    _check_line(capsys.readouterr().err, prog, wanted, files)


def _run(args, cwd, env=None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "GATO_DEBUG"}
    env = {**base, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_command_run_as_a_program_answers_one_line(files):
    """The `__main__` of a command goes through run_command; --debug adds the traceback."""
    argv = _argv(files, "-m", "gato.deploy", *DEPLOY, "--max-steps", "0")
    result = _run(argv, files["root"])
    assert result.returncode == 2
    _check_line(result.stderr, "python -m gato.deploy", ["--max-steps"], files)
    debug = _run([*argv, "--debug"], files["root"])
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "UserError" in debug.stderr
    last = debug.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m gato.deploy: error: --max-steps must be at least 1")


@pytest.mark.slow  # one interpreter per case, each importing torch and the envs: minutes in all
@pytest.mark.parametrize("module, argv, wanted", CASES, ids=IDS)
def test_bad_input_as_a_subprocess(files, module, argv, wanted):
    result = _run(["-m", f"gato.{module}", *_argv(files, *argv)], files["root"])
    assert result.returncode == 2, result.stderr
    _check_line(result.stderr, f"python -m gato.{module}", wanted, files)


# ------------------------------------------------------------------------- run_command itself


def test_run_command_styles(capsys, monkeypatch):
    monkeypatch.delenv("GATO_DEBUG", raising=False)

    def user(argv):
        raise UserError("--thing is wrong:\n  fix it")

    assert run_command(user, [], "prog") == 2
    assert capsys.readouterr().err == "prog: error: --thing is wrong: fix it\n"
    # The older style: SystemExit with a message is the same one line, status 2.
    assert run_command(lambda argv: sys.exit("error: no data here"), [], "prog") == 2
    assert capsys.readouterr().err == "prog: error: no data here\n"
    # A status (argparse's --help, usage errors) is kept.
    with pytest.raises(SystemExit) as e:
        run_command(lambda argv: sys.exit(0), [], "prog")
    assert e.value.code == 0
    # Return values: an int is the status, a report (a dict) or None means success.
    assert run_command(lambda argv: {"ok": 1}, [], "p") == 0
    assert run_command(lambda argv: 3, [], "p") == 3
    # --debug is removed before main sees it (up to a `--`), and shows the traceback.
    seen = []
    assert run_command(lambda argv: seen.append(argv), ["--a", "--debug", "--", "--debug"]) == 0
    assert seen == [["--a", "--", "--debug"]]
    assert run_command(user, ["--debug"], "prog") == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("prog: error: --thing is wrong: fix it\n")
    monkeypatch.setenv("GATO_DEBUG", "1")
    assert run_command(user, [], "prog") == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback():
    def bug(argv):
        raise KeyError("internal")

    with pytest.raises(KeyError, match="internal"):
        run_command(bug, [], "prog")


@pytest.mark.parametrize(
    "module",
    ["deploy", "evaluate", "finetune", "demo", "prompts", "train", "collect", "envs",
     "experts.measure", "bench"],
)  # fmt: skip
def test_help_lists_debug(module, capsys):
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(MAINS.get(module, f"gato.{module}")).main(["--help"])
    assert e.value.code == 0
    assert "--debug" in capsys.readouterr().out


# ------------------------------------------------------- item 8: the guards of acting work


def test_unseen_task_guard_fires_for_a_checkpoint_made_by_gato_train(tmp_path, capsys):
    """gato.train records its tasks in the sampler's state: deploy and evaluate must read them
    there (the guard used to read only state['tasks'] and never fired)."""
    from gato import deploy, evaluate, train
    from gato.collect import collect_task
    from gato.envs import get_task

    data, run = tmp_path / "data", tmp_path / "run"
    collect_task(get_task("cartpole.balance"), 3, data_dir=data, workers=1, random_episodes=1,
                 progress=False, max_steps=40)  # fmt: skip
    train.main(["--size", "debug", "--tasks", "cartpole.balance", "--data-dir", str(data),
                "--run-dir", str(run), "--steps", "1", "--batch-size", "2", "--seq-len", "64",
                "--eval-every", "1", "--eval-batches", "1", "--ckpt-every", "1",
                "--num-workers", "0", "--device", "cpu"])  # fmt: skip
    capsys.readouterr()
    with pytest.raises(UserError, match="not trained on 'cartpole.swingup'.*cartpole.balance"):
        deploy.main(["--task", "cartpole.swingup", "--checkpoint", str(run), "--max-steps", "1"])
    assert deploy.main(["--task", "cartpole.balance", "--checkpoint", str(run),
                        "--max-steps", "2"]) == 0  # fmt: skip
    assert "episode 1/1" in capsys.readouterr().out
    # Without --checkpoint: the newest checkpoint trained on the task, and there is none.
    with pytest.raises(UserError, match="trained on 'cartpole.swingup'"):
        deploy.main(["--task", "cartpole.swingup", "--runs-dir", str(tmp_path), "--max-steps", "1"])
    # evaluate takes the recorded task list when --tasks is not given.
    report = evaluate.main(["--checkpoint", str(run), "--episodes", "1", "--workers", "1",
                            "--max-steps", "2", "--data-dir", str(data), "--no-progress",
                            "--out", str(tmp_path / "eval")])  # fmt: skip
    assert [r["task"] for r in report["tasks"]] == ["cartpole.balance"]
    assert report["tasks"][0]["trained_on"] is True


@pytest.mark.slow  # one more interpreter importing the envs
def test_collect_runs_through_run_command(tmp_path):
    """gato.collect's `__main__` uses run_command too: one line; --debug adds the traceback."""
    argv = ["-m", "gato.collect", "--task", "nope.x", "--data-dir", str(tmp_path)]
    result = _run(argv, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("python -m gato.collect: error: --task: unknown task 'nope.x'")
    assert "--list" in lines[0]
    debug = _run([*argv, "--debug"], tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == lines[0]
