"""`python -m gato.evaluate`: the aggregation on hand-made numbers, and one end-to-end run."""

import json
import shutil

import pytest
from test_deploy import write_checkpoint
from test_prompts import cartpole_episode

from gato.checkpoint import trained_windows
from gato.errors import UserError
from gato.evaluate import (
    EVAL_SEED_OFFSET,
    aggregate,
    main,
    markdown_report,
    plot_report,
    rollout_jobs,
    summarize_task,
)
from gato.evaluate_workers import PolicyOptions

TABLE = {
    "a.one": {"random": 0.0, "expert": 10.0},
    "a.two": {"random": -21.0, "expert": -10.0},
    "b.one": {"random": 0.0, "expert": 1.0},
    "b.flat": {"random": 5.0, "expert": 5.0},  # undefined score: reported as None
}


def rows():
    return [
        summarize_task("a.one", "a", [5.0, 7.0], [None, None], TABLE),  # mean 6 -> 60%
        summarize_task("a.two", "a", [-15.5], [True], TABLE),  # 50% exactly
        summarize_task("b.one", "b", [0.9, 0.7, 1.1], [True, False, True], TABLE),  # 90%
        summarize_task("b.unknown", "b", [3.0], [], TABLE),  # no score entry
        summarize_task("b.flat", "b", [5.0], [], TABLE),
    ]


def test_summarize_task_on_hand_made_numbers():
    a1, a2, b1, unknown, flat = rows()
    assert a1["mean_return"] == 6.0 and a1["std_return"] == 1.0 and a1["episodes"] == 2
    assert a1["normalized_score"] == pytest.approx(0.6) and a1["success_rate"] is None
    assert a2["normalized_score"] == pytest.approx(0.5)
    assert b1["normalized_score"] == pytest.approx(0.9)
    assert b1["success_rate"] == pytest.approx(2 / 3)
    assert unknown["normalized_score"] is None and flat["normalized_score"] is None
    with pytest.raises(ValueError, match="no rollouts"):
        summarize_task("a.one", "a", [], [], TABLE)


def test_aggregate_shares_and_domain_means():
    agg = aggregate(rows())
    assert agg["tasks"] == 5 and agg["tasks_scored"] == 3
    assert agg["per_family"]["a"] == {"tasks": 2, "mean_normalized_score": pytest.approx(0.55)}
    assert agg["per_family"]["b"] == {"tasks": 1, "mean_normalized_score": pytest.approx(0.9)}
    assert agg["share_above_50"] == pytest.approx(1.0)  # 60%, 50% (at the line), 90%
    assert agg["share_above_80"] == pytest.approx(1 / 3)
    assert agg["mean_normalized_score"] == pytest.approx(2.0 / 3)
    assert agg["median_normalized_score"] == pytest.approx(0.6)
    empty = aggregate([summarize_task("b.unknown", "b", [1.0], [], TABLE)])
    assert empty["tasks_scored"] == 0 and empty["share_above_50"] is None


def test_report_files(tmp_path):
    r = rows()
    report = {
        "checkpoint": "runs/x/checkpoints/step_1",
        "episodes": 3,
        "policy": "greedy",
        "tasks": r,
        "aggregate": aggregate(r),
    }
    md = markdown_report(report)
    assert "| a.one | a | 2 | 6.000 | 1.000 | 60.0% | n/a |" in md
    assert "| b.unknown | b | 1 | 3.000 | 0.000 | n/a | n/a |" in md
    assert "at or above 50% of expert: 100.0%; at or above 80%: 33.3%" in md
    png = plot_report(report, tmp_path / "eval.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rollout_jobs_are_deterministic_and_rotate_demos():
    demos = [cartpole_episode(seed=s) for s in range(2)]
    for i, d in enumerate(demos):
        d.episode_index = 10 + i
    jobs = rollout_jobs("cartpole.balance", demos, 5, seed=7, max_steps=3)
    assert [j.seed for j in jobs] == [7 + EVAL_SEED_OFFSET + i for i in range(5)]
    assert [j.demo_index for j in jobs] == [10, 11, 10, 11, 10]
    assert rollout_jobs("cartpole.balance", [], 1, 0, None)[0].prompt is None


def run_eval(tmp_path, workers: int, out: str, num_envs: int = 16, episodes: int = 2, extra=()):
    return main(
        [
            *extra,
            "--num-envs",
            str(num_envs),
            "--checkpoint",
            str(tmp_path / "runs" / "r1"),
            "--tasks",
            "cartpole.balance",
            "--episodes",
            str(episodes),
            "--workers",
            str(workers),
            "--max-steps",
            "6",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / out),
            "--demos",
            "2",
            "--no-progress",
        ]
    )


@pytest.fixture
def eval_setup(tmp_path, collected):
    write_checkpoint(tmp_path / "runs" / "r1", tasks=["cartpole.balance"])
    shutil.copytree(collected / "cartpole.balance", tmp_path / "data" / "cartpole.balance")
    return tmp_path


def test_evaluate_in_process(eval_setup, capsys):
    report = run_eval(eval_setup, 1, "eval1")
    assert report["tasks"][0]["episodes"] == 2
    assert "| cartpole.balance | dmc | 2 |" in capsys.readouterr().out
    for name in ("eval.json", "eval.md", "eval.png"):
        assert (eval_setup / "eval1" / name).stat().st_size > 0


def test_results_do_not_depend_on_num_envs(eval_setup):
    """Rollout i keeps its seed and its own sampling generator: one env at a time and 8 envs
    acting together in one batched policy give the same returns, rollout by rollout."""
    one = run_eval(eval_setup, 1, "one", num_envs=1, episodes=9)["rollouts"]
    eight = run_eval(eval_setup, 1, "eight", num_envs=8, episodes=9)["rollouts"]
    assert [r["seed"] for r in one] == [EVAL_SEED_OFFSET + i for i in range(9)]
    assert [r["return"] for r in one] == [r["return"] for r in eight]
    assert len({r["return"] for r in one}) > 3  # sampled actions: returns really differ


@pytest.mark.slow  # spawns 2 worker processes that each import torch and load the model
def test_evaluate_end_to_end_with_workers(eval_setup):
    report = run_eval(eval_setup, 2, "eval2", num_envs=8)
    saved = json.loads((eval_setup / "eval2" / "eval.json").read_text())
    assert saved["tasks"][0]["task"] == "cartpole.balance"
    assert saved["tasks"][0]["normalized_score"] is not None
    assert saved["aggregate"]["per_family"]["dmc"]["tasks"] == 1
    assert [r["steps"] for r in saved["rollouts"]] == [6, 6]
    assert saved["rollouts"][0]["demo_index"] != saved["rollouts"][1]["demo_index"]
    # Seeds depend only on the rollout: the same returns in one process with one env as in two
    # workers with 8 envs each.
    again = run_eval(eval_setup, 1, "eval1", num_envs=1)
    assert [r["return"] for r in again["rollouts"]] == [r["return"] for r in report["rollouts"]]
    many = run_eval(eval_setup, 2, "eval8", num_envs=8, episodes=9)["rollouts"]
    single = run_eval(eval_setup, 1, "eval1x9", num_envs=1, episodes=9)["rollouts"]
    assert [r["return"] for r in many] == [r["return"] for r in single]


def test_packed_window_checkpoints_roll_out_in_their_training_window(tmp_path, collected):
    """A checkpoint trained on packed windows (its sampler state records window_tokens) is
    rolled out, by default, with window memory over its training window and a prompt of its
    prompt budget; flags still win."""
    sampler = {
        "tasks": {"cartpole.balance": {}},
        "window_tokens": {"cartpole.balance": 14},
        "config": {"prompt_prob": 0.25, "max_prompt_frac": 0.5, "window_steps": 2},
    }
    assert trained_windows({"sampler": sampler}) == {"cartpole.balance": (14, 7)}
    assert trained_windows({"sampler": {"tasks": {}}}) == {}  # unpacked, or before packing
    write_checkpoint(tmp_path / "runs" / "r1", state={"sampler": sampler})
    shutil.copytree(collected / "cartpole.balance", tmp_path / "data" / "cartpole.balance")
    report = run_eval(tmp_path, 1, "packed", num_envs=2)
    assert report["tasks"][0]["layout"] == "context 14 tokens (window memory), prompt 7 tokens"
    # window memory on the cache: the same rollouts whatever the number of envs (sampled, 6
    # steps of 7 tokens slide the 14-token window)
    one = run_eval(tmp_path, 1, "packed1", num_envs=1, episodes=5)["rollouts"]
    four = run_eval(tmp_path, 1, "packed4", num_envs=4, episodes=5)["rollouts"]
    assert [r["return"] for r in one] == [r["return"] for r in four]
    flags = ["--memory", "sliding", "--context-tokens", "30", "--prompt-tokens", "0"]
    report = run_eval(tmp_path, 1, "flags", num_envs=2, extra=flags)
    assert report["policy"].endswith("context 30 tokens, prompt 0 tokens")
    opts = PolicyOptions(windows={"cartpole.balance": (14, 7)}, prompt_tokens=0)
    assert opts.for_task("cartpole.balance") == (14, 0, "window")
    assert opts.for_task("babyai.open") == (None, 0, "sliding")


def test_greedy_tasks_act_greedily_by_task_or_family(eval_setup):
    """--greedy-tasks names tasks or families acted greedily: the same rollouts as --greedy for
    a named one, sampled ones for the others; an unknown name is a one-line error."""
    greedy = run_eval(eval_setup, 1, "g", episodes=4, extra=["--greedy"])
    by_family = run_eval(eval_setup, 1, "f", episodes=4, extra=["--greedy-tasks", "dmc"])
    by_task = run_eval(eval_setup, 1, "t", episodes=4, extra=["--greedy-tasks", "cartpole.balance"])
    sampled = run_eval(eval_setup, 1, "s", episodes=4, extra=["--greedy-tasks", "babyai"])

    def returns(report):
        return [r["return"] for r in report["rollouts"]]

    assert returns(greedy) == returns(by_family) == returns(by_task)
    assert returns(sampled) != returns(greedy)
    assert by_family["tasks"][0]["decoding"] == "greedy"
    assert sampled["tasks"][0]["decoding"] == "temperature 1.0"
    assert by_family["policy"].startswith("greedy on dmc, else temperature 1.0")
    options = PolicyOptions(greedy_tasks=frozenset({"metaworld"}))
    assert options.greedy_for("metaworld.reach", "metaworld")
    assert not options.greedy_for("babyai.open", "babyai")
    with pytest.raises(UserError, match="--greedy-tasks"):
        run_eval(eval_setup, 1, "bad", extra=["--greedy-tasks", "dmc,nosuch.task"])
