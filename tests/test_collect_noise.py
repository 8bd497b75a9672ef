"""Noise-injected (DART) collection and the suites' volumes; the fakes live in test_collect.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_collect import FAKE, collect_fake

from gato import collect
from gato import datasets as store
from gato.errors import run_command
from gato.jat import CONTINUOUS_OBS
from gato.specs import DiscreteSpec

# ------------------------------------------------------ noise-injected collection (DART)


def test_epsilon_noise_records_the_expert_and_refuses_other_noise_on_resume(tmp_path):
    """The fake expert's action is a pure function of the observation (the target): with
    epsilon noise every stored action is still the expert's, while the returns (1 per step on
    target) show that other actions ran."""
    plain = collect_fake(tmp_path / "plain", episodes=6)
    noisy = collect_fake(tmp_path / "noisy", episodes=6, epsilon=0.5)
    again = collect_fake(tmp_path / "again", episodes=6, epsilon=0.5, shard_size=4)
    assert (plain["noise_epsilon"], plain["noise_sigma"]) == (0.0, None)
    assert (noisy["noise_epsilon"], noisy["noise_sigma"]) == (0.5, None)
    assert noisy["lengths"] == plain["lengths"]
    assert noisy["returns"] == again["returns"]  # a function of (task, seed + i, noise)
    # About 1/3 of the steps run an action off target (1/2 random, 2/3 of those wrong).
    off = 1 - sum(noisy["returns"]) / sum(noisy["lengths"])
    assert 0.1 < off < 0.6 and noisy["returns"] != plain["returns"]
    # The 80% filter ranks the executed returns.
    assert noisy["expert_return"] == store.expert_return(noisy["returns"])
    assert noisy["filtered_indices"] == [
        i for i, r in enumerate(noisy["returns"]) if r >= 0.8 * noisy["expert_return"] - 1e-9
    ]
    for ep in store.load_task_episodes(FAKE.name, tmp_path / "noisy", filtered=False):
        targets = ep.observations[CONTINUOUS_OBS][:, 0].astype(np.int64)
        np.testing.assert_array_equal(ep.actions, targets)
        assert ep.total_return == float(noisy["returns"][ep.episode_index])
    with pytest.raises(SystemExit, match=r"noise_epsilon.*\(0\.5, 0\.2\)"):
        collect_fake(tmp_path / "noisy", episodes=8, epsilon=0.2)
    with pytest.raises(SystemExit, match=r"noise_epsilon.*\(0\.0, 0\.5\)"):
        collect_fake(tmp_path / "plain", episodes=8, epsilon=0.5)
    # Metadata written before noise existed counts as noiseless.
    path = tmp_path / "plain" / FAKE.name / store.METADATA_NAME
    legacy = json.loads(path.read_text())
    del legacy["noise_epsilon"], legacy["noise_sigma"]
    path.write_text(json.dumps(legacy))
    with pytest.raises(SystemExit, match=r"noise_epsilon.*\(0\.0, 0\.5\)"):
        collect_fake(tmp_path / "plain", episodes=8, epsilon=0.5)
    assert collect_fake(tmp_path / "plain", episodes=8)["episodes"] == 8


def test_noise_collection_rejects_bad_values_in_one_line(capsys):
    from gato.envs import get_task

    cases = [
        (["--task", "cartpole.balance", "--noise", "-0.1"], "sigma"),
        (["--task", "cartpole.balance", "--noise", "nan"], "sigma"),
        (["--task", "cartpole.balance", "--noise", "abc"], "--noise"),
        (["--task", "babyai.go-to-red-ball", "--epsilon", "1.5"], "epsilon"),
        (["--task", "cartpole.balance", "--policy", "random", "--noise", "0.1"], "random"),
    ]
    for argv, word in cases:
        with pytest.raises(SystemExit) as err:
            collect.main(argv)
        message = capsys.readouterr().err
        assert err.value.code == 2 and word in message and message.count("\n") == 1, argv
    # The wrong kind of noise for the task's actions: refused before anything is collected.
    for argv, word in [
        (["--task", "babyai.go-to-red-ball", "--noise", "0.1"], "--epsilon"),
        (["--task", "cartpole.balance", "--epsilon", "0.1"], "--noise"),
    ]:
        assert run_command(collect.main, argv, collect.PROG) == 2
        message = capsys.readouterr().err
        assert word in message and message.count("\n") == 1, argv
        assert message.startswith("python -m gato.collect: error: "), message
    with pytest.raises(ValueError, match="continuous"):
        collect.collect_task(get_task("babyai.go-to-red-ball"), 1, sigma=0.1)


def test_gaussian_noise_on_metaworld_stores_the_scripted_policy_actions(tmp_path):
    """Meta-World's scripted policy is a pure function of the observation: for every stored
    state its action is the stored one, while the executed (noisy) actions led elsewhere."""
    from gato.envs import get_task
    from gato.experts.metaworld import ScriptedPolicyExpert

    info = get_task("metaworld.reach")

    def run(folder, **noise):
        meta = collect.collect_task(
            info,
            2,
            data_dir=tmp_path / folder,
            seed=4,
            workers=1,
            random_episodes=0,
            max_steps=40,
            progress=False,
            **noise,
        )
        return meta, store.load_task_episodes(info.name, tmp_path / folder, filtered=False)

    plain_meta, plain = run("plain")
    meta, noisy = run("noisy", sigma=0.3)
    _, again = run("again", sigma=0.3)
    assert (meta["noise_sigma"], meta["noise_epsilon"]) == (0.3, None)
    assert (plain_meta["noise_sigma"], plain_meta["noise_epsilon"]) == (0.0, None)
    expert = ScriptedPolicyExpert(info.env_id)
    for p, n, a in zip(plain, noisy, again, strict=True):
        obs = n.observations[CONTINUOUS_OBS]
        for t in range(len(obs)):
            action = expert.act({CONTINUOUS_OBS: obs[t]})
            assert action.tobytes() == n.actions[t].tobytes(), t
        first = p.observations[CONTINUOUS_OBS]
        assert first[0].tobytes() == obs[0].tobytes()  # the same reset
        assert first[1:].tobytes() != obs[1:].tobytes()  # other actions ran
        assert p.actions.tobytes() != n.actions.tobytes()
        for key in ("observations", "actions", "rewards"):
            x, y = getattr(n, key), getattr(a, key)
            x, y = (x[CONTINUOUS_OBS], y[CONTINUOUS_OBS]) if key == "observations" else (x, y)
            assert x.tobytes() == y.tobytes(), key  # reproducible for the same seed and noise
    with pytest.raises(SystemExit, match=r"noise_sigma.*\(0\.3, 0\.1\)"):
        run("noisy", sigma=0.1)


def test_epsilon_noise_on_babyai_stores_the_bot_action_not_the_executed_one(tmp_path):
    """BabyAI's observation starts with the agent's direction: a stored left/right that the next
    observation's direction does not follow means another action ran there."""
    from gato.envs import get_task

    info = get_task("babyai.go-to-red-ball")
    turn = {0: -1, 1: 1}  # left, right; the other actions keep the direction

    def mismatches(**noise):
        folder = tmp_path / str(noise)
        meta = collect.collect_task(
            info, 12, data_dir=folder, workers=1, random_episodes=0, progress=False, **noise
        )
        count = 0
        for ep in store.load_task_episodes(info.name, folder, filtered=False):
            d = ep.observations["discrete_observations"][:, 0]
            predicted = (d[:-1] + np.array([turn.get(int(a), 0) for a in ep.actions[:-1]])) % 4
            count += int((predicted != d[1:]).sum())
        return meta, count

    plain_meta, plain = mismatches()
    meta, noisy = mismatches(epsilon=0.3)
    assert plain == 0 and noisy > 0
    assert (meta["noise_epsilon"], meta["noise_sigma"]) == (0.3, None)
    assert meta["lengths"] != plain_meta["lengths"]
    assert meta["success_rate"] >= 0.75  # the bot recovers from the random actions


# ------------------------------------------------------------------------------ the suites


def test_suites_volumes():
    default, quick = collect.SUITES["default"], collect.SUITES["quick"]
    for task, opts in default.items():
        family = task.split(".")[0]
        least = {"babyai": 5000, "metaworld": 1000, "cartpole": 1000, "atari": 1}[family]
        assert opts["episodes"] >= least, task
    assert default["atari.pong"]["episodes"] <= 10  # full games, ~10 s each
    assert set(quick) == set(default) - {"atari.pong", "metaworld.assembly"}
    assert all(10 <= opts["episodes"] < 100 for opts in quick.values())


@pytest.mark.slow  # 12 tasks' envs, 2 short episodes each: ~20-30 s
def test_quick_suite_collects_every_task_with_noise(tmp_path, monkeypatch, capsys):
    tiny = {t: {"episodes": 2, "random_episodes": 1} for t in collect.SUITES["quick"]}
    monkeypatch.setitem(collect.SUITES, "quick", tiny)
    argv = ["--suite", "quick", "--workers", "1", "--max-steps", "15", "--no-progress"]
    argv += ["--data-dir", str(tmp_path), "--noise", "0.1", "--epsilon", "0.1"]
    assert collect.main(argv) == 0
    from gato.envs import get_task

    for task in tiny:
        meta = store.read_metadata(task, tmp_path)
        assert meta["complete"] and meta["episodes"] == 2 and len(meta["random_returns"]) == 1
        discrete = isinstance(get_task(task).action_spec, DiscreteSpec)
        noise = (meta["noise_sigma"], meta["noise_epsilon"])
        assert noise == ((None, 0.1) if discrete else (0.1, None)), task
        assert max(meta["lengths"]) <= 15
    assert capsys.readouterr().out.count("noise sigma 0.1") == 8
