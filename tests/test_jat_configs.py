"""Issue 15 items 2 and 5: every JAT dataset config maps to a registered task with JAT's layout.

The layouts JAT recorded are checked against sources other than this project's tables: JAT's own
envs where they can still be built here (Gymnasium's v4 MuJoCo envs, ALE's minimal action sets,
minigrid's levels), and the sizes JAT's code declares where they cannot (its Meta-World v2
wrapper's Box(39) and Box(4); Gymnasium's documented Pusher-v4 sizes).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from gato.envs import CONTINUOUS_OBS, DISCRETE_OBS, IMAGE_OBS, TEXT_OBS, get_task, make_env
from gato.envs import jat_configs as jc
from gato.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"
# Declared by JAT's recording code (not derivable here): Meta-World v2's MetaWorldEnv spaces
# (qgallouedec/Metaworld@gym2.6_register) and Pusher-v4 (Gymnasium docs; needs mujoco<3).
METAWORLD_V2 = (39, 4)
PUSHER_V4 = (23, 7)


def test_157_configs_by_family_each_an_alias_of_its_task():
    configs = jc.jat_configs()
    families = {f: sum(c.config.startswith(f + "-") for c in configs) for f in jc.JAT_FAMILIES}
    assert families == {"atari": 57, "babyai": 39, "metaworld": 50, "mujoco": 11}
    assert len({c.config for c in configs}) == len(configs) == 157
    for c in configs:
        info = get_task(c.config)  # the JAT name resolves to the task it maps to
        assert info.name == c.task and info.jat_name == c.config and info.env_id == c.env
        assert c.status in jc.STATUSES
        assert c.notes, c.config  # every row says what differs from JAT's recording


def test_mujoco_configs_are_jats_v4_envs_and_v5_keeps_its_own_names():
    expected = {"mujoco-ant": 27, "mujoco-humanoid": 376, "mujoco-standup": 376}
    expected |= {"mujoco-doublependulum": 11, "mujoco-reacher": 11}
    for config, size in expected.items():
        assert get_task(config).obs_spec[CONTINUOUS_OBS].shape == (size,), config
    assert get_task("mujoco-ant").name == "mujoco.ant"
    assert get_task("mujoco.ant-v5").obs_spec[CONTINUOUS_OBS].shape == (105,)
    assert get_task("mujoco.ant-v5").jat_name is None  # the hub has no v5 data
    for c in jc.jat_configs():
        if c.config.startswith("mujoco-"):
            assert c.jat_env.endswith("-v4"), c
            assert c.status == (jc.ENV_DIFFERS if c.config == "mujoco-pusher" else jc.SUPPORTED)


def _jat_layout(c: jc.JatConfig) -> tuple:
    """(observation shapes, action shape or count) of JAT's env, built from JAT's env id."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # v4 'out of date'
        if c.config.startswith("mujoco-"):
            if c.config == "mujoco-pusher":
                return {CONTINUOUS_OBS: (PUSHER_V4[0],)}, (PUSHER_V4[1],)
            env = gym.make(c.jat_env)
            return {CONTINUOUS_OBS: env.observation_space.shape}, env.action_space.shape
        if c.config.startswith("metaworld-"):
            return {CONTINUOUS_OBS: (METAWORLD_V2[0],)}, (METAWORLD_V2[1],)
        if c.config.startswith("babyai-"):
            import minigrid  # noqa: F401

            space = gym.make(c.jat_env).observation_space
            size = 1 + int(np.prod(space["image"].shape))  # JAT: direction, then the view
            return {DISCRETE_OBS: (size,), TEXT_OBS: ()}, int(gym.make(c.jat_env).action_space.n)
        import ale_py

        gym.register_envs(ale_py)
        # JAT's Atari env: ALE v5's default minimal action set; its frames are converted on load.
        return {IMAGE_OBS: "converted"}, int(gym.make(c.jat_env).action_space.n)


def _check_layout(c: jc.JatConfig) -> None:
    from gato.envs import atari

    obs, act = _jat_layout(c)
    info = get_task(c.task)
    env = make_env(c.task)
    for key, shape in obs.items():
        assert key in env.observation_space.spaces, c
        if key == IMAGE_OBS:
            assert env.observation_space[key].shape == info.obs_spec[key].shape == (80, 80, 3)
        elif key != TEXT_OBS:
            assert env.observation_space[key].shape == info.obs_spec[key].shape == shape, c
    assert set(env.observation_space.spaces) == set(obs), c
    if isinstance(act, int):  # discrete: JAT's n actions, each one of this env's actions
        if c.config.startswith("atari-"):
            minimal = atari.minimal_action_set(c.task)
            assert len(minimal) == act and max(minimal) < info.action_spec.n, c
        else:
            assert info.action_spec.n == env.action_space.n == act, c
    else:
        assert env.action_space.shape == info.action_spec.shape == act, c
    env.close()


FAST = ["atari-pong", "babyai-go-to", "metaworld-assembly"] + [
    c for c in ("mujoco-" + r for r in "ant humanoid standup doublependulum reacher pusher".split())
]


@pytest.mark.parametrize("config", FAST)
def test_config_env_has_jats_layout(config):
    _check_layout(jc.jat_config(config))


@pytest.mark.slow
def test_every_config_env_has_jats_layout():
    for c in jc.jat_configs():
        _check_layout(c)


def test_atari_hub_actions_map_minimal_to_full_and_out_of_range_fails():
    pong = get_task("atari-pong")
    got = jc.from_jat_actions(pong, np.array([0, 1, 2, 3, 4, 5]))
    np.testing.assert_array_equal(got, [0, 1, 3, 4, 11, 12])  # NOOP FIRE RIGHT LEFT RF LF
    with pytest.raises(ValueError, match="outside the game's 6 minimal actions"):
        jc.from_jat_actions(pong, np.array([0, 6]))
    actions = np.array([[0.5, -0.5]] * 3, np.float32)
    assert jc.from_jat_actions(get_task("mujoco-reacher"), actions) is actions


def _hub_parquet(tmp_path, rows, features):
    import datasets

    path = tmp_path / "hub" / "train-00000.parquet"
    path.parent.mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=datasets.Features(features)).to_parquet(str(path))
    return path.parent


def test_mujoco_ant_hub_rows_load_with_the_registered_env(tmp_path):
    import datasets

    from gato.jat import load_hub_task

    seq2 = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
    features = {
        CONTINUOUS_OBS: seq2,
        "continuous_actions": seq2,
        "rewards": datasets.Sequence(datasets.Value("float32")),
    }
    for size, ok in ((27, True), (105, False)):  # v4's layout loads; v5's is refused
        rows = {
            CONTINUOUS_OBS: [np.zeros((3, size), np.float32).tolist()],
            "continuous_actions": [np.zeros((3, 8), np.float32).tolist()],
            "rewards": [[1.0, 0.0, 1.0]],
        }
        local = _hub_parquet(tmp_path / str(size), rows, features)
        episodes = load_hub_task("mujoco-ant", local_path=local, cache_dir=str(tmp_path / "c"))
        if ok:
            (ep,) = episodes
            assert ep.task == "mujoco.ant" and ep.observations[CONTINUOUS_OBS].shape == (3, 27)
        else:
            with pytest.raises(ValueError, match="per-step shape"):
                list(episodes)


def test_atari_hub_rows_load_with_full_set_actions(tmp_path):
    import datasets
    from PIL import Image

    from gato.jat import load_hub_task

    frames = np.zeros((3, 84, 84, 4), np.uint8)
    rows = {
        IMAGE_OBS: [[Image.fromarray(f) for f in frames]],
        "discrete_actions": [[2, 3, 5]],
        "rewards": [[0.0, 1.0, 0.0]],
    }
    features = {
        IMAGE_OBS: datasets.Sequence(datasets.Image()),
        "discrete_actions": datasets.Sequence(datasets.Value("int64")),
        "rewards": datasets.Sequence(datasets.Value("float32")),
    }
    local = _hub_parquet(tmp_path, rows, features)
    (ep,) = load_hub_task("atari-pong", local_path=local, cache_dir=str(tmp_path / "c"))
    np.testing.assert_array_equal(ep.actions, [3, 4, 12])  # RIGHT LEFT LEFTFIRE, full-set ids


def test_an_unsupported_config_is_a_one_line_user_error(monkeypatch, tmp_path):
    from gato.jat import load_hub_task

    broken = jc.JatConfig(
        "mujoco-ant", "mujoco.ant", "Ant-v4", "Ant-v5", jc.UNSUPPORTED, ("needs a newer layout",)
    )
    monkeypatch.setattr(jc, "jat_configs", lambda: (broken,))
    with pytest.raises(UserError) as error:
        list(load_hub_task("mujoco-ant", local_path=tmp_path))
    message = str(error.value)
    assert "\n" not in message and "unsupported" in message and "needs a newer layout" in message
    jc.require_supported("metaworld-reach")  # not in the patched table: nothing to refuse


def test_reference_env_names_the_packages_and_versions():
    from importlib.metadata import version

    assert jc.reference_env("mujoco-ant") == (
        f"Ant-v4 (gymnasium {version('gymnasium')}, mujoco {version('mujoco')})"
    )
    assert jc.reference_env("metaworld.reach").startswith(
        f"reach-v3 (metaworld {version('metaworld')}"
    )
    assert f"minigrid {version('minigrid')}" in jc.reference_env("babyai.go-to")
    assert f"ale-py {version('ale-py')}" in jc.reference_env("atari.pong")
    assert f"dm_control {version('dm_control')}" in jc.reference_env("cartpole.balance")


def test_jat_command_and_info(capsys):
    from gato.envs.__main__ import main

    main(["--jat"])
    out = capsys.readouterr().out
    assert all(c.config in out for c in jc.jat_configs())
    assert "157 JAT configs: 49 supported, 108 supported, env differs, 0 unsupported" in out
    assert "metaworld: recorded with Meta-World v2" in out  # the version mismatch is named
    main(["--info", "mujoco-pusher"])
    out = capsys.readouterr().out
    assert "env: Pusher-v5 (gymnasium" in out and "recorded in Pusher-v4" in out


def test_readme_table_lists_every_config_as_the_command_does():
    table = jc.jat_table(markdown=True).split("\n\n")[0]
    assert table in README.read_text(), "README's JAT table is stale: python -m gato.envs --jat"
