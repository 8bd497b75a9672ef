"""experiments/ladder.py end to end on a tiny recipe: data, training, evaluation, the table."""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

import ladder  # noqa: E402

RECIPE = {
    "comment": "tiny: a smoke run of the ladder's stages",
    "goal": {"metric": "normalized_score", "at_least": 0.95},
    "data": {
        "episodes": 3,
        "workers": 1,
        "max_steps": 40,
        "random_episodes": 2,
        "no_progress": True,
    },
    "train": {
        "size": "debug",
        "steps": 4,
        "batch_size": 2,
        "seq_len": 64,
        "lr": 1e-3,
        "warmup_steps": 1,
        "decay_steps": 4,
        "eval_every": 4,
        "eval_batches": 1,
        "ckpt_every": 2,
        "log_every": 1,
        "num_workers": 0,
        "device": "cpu",
    },
    "eval": {"episodes": 3, "workers": 1, "num_envs": 2, "max_steps": 5, "greedy": True},
}


def test_flags():
    assert ladder.flags({"batch_size": 8, "greedy": True, "x": False, "y": None}) == [
        "--batch-size",
        "8",
        "--greedy",
    ]


def test_bad_recipes_are_clear_errors(tmp_path):
    with pytest.raises(SystemExit, match="no recipe"):
        ladder.main(["--task", "cartpole.balance", "--preset-dir", str(tmp_path)])
    (tmp_path / "cartpole.balance.json").write_text(json.dumps({"goal": {}}))
    with pytest.raises(SystemExit, match="lacks"):
        ladder.main(["--task", "cartpole.balance", "--preset-dir", str(tmp_path)])
    # A variant names its task: a different --task, or none at all, is refused before any work.
    variant = tmp_path / "cartpole.balance-x.json"
    variant.write_text(json.dumps({"task": "cartpole.balance", **RECIPE}))
    with pytest.raises(
        SystemExit, match="a recipe for cartpole.balance, not --task metaworld.reach"
    ):
        ladder.main(["--task", "metaworld.reach", "--recipe", str(variant)])
    variant.write_text(json.dumps(RECIPE))
    with pytest.raises(SystemExit, match='names no "task"'):
        ladder.main(["--recipe", str(variant)])


@pytest.mark.slow  # collects, trains and evaluates for real (about half a minute)
def test_ladder_end_to_end(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "cartpole.balance.json").write_text(json.dumps(RECIPE))
    argv = [
        "--task",
        "cartpole.balance",
        "--preset-dir",
        str(presets),
        "--data-dir",
        str(tmp_path / "data"),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results",
        str(tmp_path / "ladder.md"),
        "--threads",
        "1",
    ]
    assert ladder.main(argv) == 0
    table = (tmp_path / "ladder.md").read_text()
    row = [r for r in table.splitlines() if r.startswith("| cartpole.balance |")]
    assert len(row) == 1 and "| 95% of expert |" in row[0] and "| 3 |" in row[0]
    times = json.loads((tmp_path / "runs" / "cartpole.balance" / "times.json").read_text())
    assert set(times) == {"data", "train", "eval"}
    # Run again: training is skipped (its final checkpoint exists), the row is replaced, not added.
    assert ladder.main([*argv, "--stages", "train,report"]) == 0
    assert (tmp_path / "ladder.md").read_text().count("| cartpole.balance |") == 1
    # A variant recipe (an ablation) keeps its own run folder and its own row, and its own data.
    variant = tmp_path / "cartpole.balance@greedy.json"
    variant.write_text(
        json.dumps(
            {"task": "cartpole.balance", **RECIPE, "data_dir": str(tmp_path / "variant-data")}
        )
    )
    shutil.copytree(
        tmp_path / "runs" / "cartpole.balance" / "eval", tmp_path / "runs" / variant.stem / "eval"
    )
    assert ladder.main([*argv, "--recipe", str(variant), "--stages", "report"]) == 0
    rows = [
        r for r in (tmp_path / "ladder.md").read_text().splitlines() if r.startswith("| cartpole")
    ]
    assert [r.split(" | ")[0] for r in rows] == ["| cartpole.balance", "| cartpole.balance@greedy"]
    assert (tmp_path / "ladder.md").read_text().startswith("# The single-task ladder\n")
    # A variant's own table is named as one by its first writer.
    argv_variants = [*argv, "--recipe", str(variant), "--results", str(tmp_path / "variants.md")]
    assert ladder.main([*argv_variants, "--stages", "report"]) == 0
    assert (tmp_path / "variants.md").read_text().startswith("# Variants of the single-task")
    args = ladder.LadderArgs(recipe=str(variant))
    assert ladder.recipe_path(args) == variant


@pytest.mark.slow  # collects and trains a few steps, then diagnoses the checkpoint
def test_diagnose_imitation_runs_on_a_ladder_checkpoint(tmp_path, capsys, monkeypatch):
    import diagnose_imitation

    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "cartpole.balance.json").write_text(json.dumps(RECIPE))
    data, runs = tmp_path / "data", tmp_path / "runs"
    argv = ["--task", "cartpole.balance", "--preset-dir", str(presets), "--data-dir", str(data)]
    argv += ["--runs-dir", str(runs), "--threads", "1", "--stages", "data,train"]
    assert ladder.main(argv) == 0
    checkpoint = str(runs / "cartpole.balance" / "train")
    args = ["--checkpoint", checkpoint, "--data-dir", str(data), "--episodes", "2"]
    args += ["--early", "3", "--context", "64", "--steps", "6", "--print-every", "2"]
    assert diagnose_imitation.main(args) == 0
    out = capsys.readouterr().out
    assert "teacher-forced, start of episodes (6 action tokens)" in out
    assert "teacher-forced, later of episodes (6 action tokens)" in out
    assert out.count("  t=") == 3 and "closed loop: return" in out and "over 6 steps" in out
    assert "the middle action every step, same seed: return" in out
    # --prompt-tokens 0 rolls out unprompted, as the short-window recipes are evaluated.
    from gato.policy import GatoPolicy

    prompts, reset = [], GatoPolicy.reset
    monkeypatch.setattr(
        GatoPolicy,
        "reset",
        lambda self, prompt=None, seed=None: (prompts.append(prompt), reset(self, prompt, seed)),
    )
    assert diagnose_imitation.main([*args, "--prompt-tokens", "0"]) == 0
    assert prompts and all(p is None for p in prompts)
    prompts.clear()
    assert diagnose_imitation.main(args) == 0
    assert any(p is not None for p in prompts)


def test_zero_action_return_takes_scalar_bounds_and_skips_discrete_actions():
    import diagnose_imitation

    # Meta-World's action bounds are scalars for a 4-dimensional action.
    assert isinstance(diagnose_imitation.zero_action_return("metaworld.reach", 0, 3), float)
    assert diagnose_imitation.zero_action_return("babyai.go-to-red-ball", 0, 3) is None


RECIPES = sorted((ROOT / "experiments" / "presets").glob("ladder*/*.json"))


@pytest.mark.parametrize("path", RECIPES, ids=[f"{p.parent.name}/{p.stem}" for p in RECIPES])
def test_every_committed_recipe_parses_with_the_commands_it_drives(path):
    """A recipe's stages are argv for gato.collect, gato.train and gato.evaluate: a misspelt or
    retired key would only fail half an hour into a ladder run."""
    from gato.cli import parse_dataclass_args
    from gato.collect import parse_args as parse_collect
    from gato.envs import get_task
    from gato.evaluate import EvaluateArgs
    from gato.train_args import parse_args as parse_train

    args = ladder.LadderArgs(recipe=str(path.relative_to(ROOT)))
    recipe = ladder.load_recipe(args)
    task = ladder.recipe_task(args, recipe) if "task" in recipe else path.stem
    if path.parent.name == "ladder":
        assert task == path.stem
    else:  # a variant is named <its task>-<its change>
        assert path.stem.startswith(f"{task}-") and "task" in recipe
    get_task(task)
    collect = parse_collect(["--task", task, *ladder.flags(recipe["data"])])
    assert collect.episodes == recipe["data"]["episodes"]
    train = parse_train(["--tasks", task, *ladder.flags(recipe["train"])])
    assert (train.steps, train.seq_len) == (recipe["train"]["steps"], recipe["train"]["seq_len"])
    argv = ["--tasks", task, *ladder.flags(recipe["eval"])]
    evaluate, _ = parse_dataclass_args(EvaluateArgs, argv, "gato.evaluate", None)
    assert evaluate.episodes == 50  # the paper's count, which the ladder's goals are about
    assert recipe["goal"]["at_least"] in (0.9, 0.95)
