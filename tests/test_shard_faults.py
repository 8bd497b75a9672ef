"""Shards under faults (issue 13 item 5): a truncated or byte-flipped shard is named wherever it
is read; collection's resume verifies every shard it counts, moves a damaged one aside and
collects its episodes again; training names the file it cannot read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from gato.collect import collect_task
from gato.envs import get_task
from gato.errors import UserError
from gato.jat import iter_episodes, read_shard, shard_episode_indices, shard_paths, write_shard
from gato.shards import ShardError, quarantine, read_table, verify_shard

REPO = Path(__file__).resolve().parents[1]
TASK = "cartpole.balance"


def _collect(root: Path, episodes: int = 6) -> dict:
    return collect_task(get_task(TASK), episodes, data_dir=root, workers=1, shard_size=2,
                        random_episodes=1, progress=False, max_steps=30)  # fmt: skip


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A collected task folder of 3 shards (6 episodes); tests damage copies of it."""
    root = tmp_path_factory.mktemp("pristine")
    _collect(root)
    return root


@pytest.fixture
def data(pristine, tmp_path) -> Path:
    import shutil

    shutil.copytree(pristine, tmp_path / "data")
    return tmp_path / "data"


def _truncate(path: Path) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) * 2 // 3])


def _flip_middle(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def _flip_footer(path: Path) -> None:
    """Flip a byte near the start of the thrift-encoded footer (its schema), the probe that made
    pyarrow say "Couldn't deserialize thrift" naming no file."""
    blob = bytearray(path.read_bytes())
    footer_len = int.from_bytes(blob[-8:-4], "little")  # the footer, its length, then "PAR1"
    blob[len(blob) - 8 - footer_len + 3] ^= 0xFF
    path.write_bytes(bytes(blob))


def _flip_data_page(path: Path) -> None:
    """Flip a byte inside the observations' data pages: caught by the page checksums."""
    blob = bytearray(path.read_bytes())
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunk = next(
        meta.column(i)
        for i in range(meta.num_columns)
        if meta.column(i).path_in_schema.startswith("continuous_observations")
    )
    blob[chunk.data_page_offset + chunk.total_compressed_size // 2] ^= 0x01
    path.write_bytes(bytes(blob))


DAMAGE = {"truncated": _truncate, "flipped": _flip_middle, "footer": _flip_footer,
          "page": _flip_data_page}  # fmt: skip


def test_shard_errors_are_user_errors():
    assert issubclass(ShardError, UserError)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_read_names_the_damaged_file(data, damage):
    path = shard_paths(data / TASK)[1]
    assert verify_shard(path) is None
    DAMAGE[damage](path)
    for read in (read_table, read_shard):
        with pytest.raises(ShardError) as err:
            read(path)
        message = str(err.value)
        assert message.startswith(f"cannot read shard {path}: it is damaged"), message
        assert "\n" not in message and "python -m gato.collect" in message
    problem = verify_shard(path)
    assert problem is not None and "\n" not in problem
    if damage in ("truncated", "footer"):  # the footer itself: not even one column reads
        with pytest.raises(ShardError, match=str(path)):
            shard_episode_indices(path)


def test_a_shard_that_disagrees_with_its_name_or_the_metadata_fails_verification(data):
    first, second = shard_paths(data / TASK)[:2]
    assert verify_shard(first, expected_rows=2) is None
    assert verify_shard(first, expected_rows=3) == "2 rows, but metadata.json recorded 3"
    # A whole parquet file of one episode under a name spanning two.
    (episode,) = read_shard(second)[:1]
    fake = write_shard(data / "other", [episode], name=first.name)
    assert verify_shard(fake) == "1 rows, but its name spans 2 episodes"
    # The right count, the wrong episodes.
    os.replace(second, first)
    assert verify_shard(first).startswith("episode indices [2, 3]")


def test_quarantine_never_overwrites(tmp_path):
    for n in range(3):
        (tmp_path / "episodes-000000-000001.parquet").write_bytes(bytes([n]))
        quarantine(tmp_path / "episodes-000000-000001.parquet")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["episodes-000000-000001.parquet.corrupt",
                     "episodes-000000-000001.parquet.corrupt-2",
                     "episodes-000000-000001.parquet.corrupt-3"]  # fmt: skip
    assert shard_paths(tmp_path) == []  # no reader lists them


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_quarantines_a_damaged_shard_and_recollects_it(data, pristine, damage, capfd):
    folder = data / TASK
    victim = shard_paths(folder)[1]
    want = pq.read_table(pristine / TASK / victim.name)
    meta_before = json.loads((folder / "metadata.json").read_text())
    assert meta_before["shard_rows"] == {p.name: 2 for p in shard_paths(folder)}
    DAMAGE[damage](victim)
    meta = _collect(data)
    err = capfd.readouterr().err
    assert f"gato.collect: shard {victim} is corrupt (" in err, err
    assert f"moved aside to {victim.name}.corrupt, its episodes will be collected again" in err
    assert "2 to collect" in err  # the other 4 episodes were verified and kept
    assert (folder / f"{victim.name}.corrupt").is_file()
    assert pq.read_table(victim).equals(want)  # the same episodes, collected again
    assert meta["complete"] and meta["episode_indices"] == list(range(6))
    assert meta["returns"] == meta_before["returns"]
    assert all(verify_shard(p) is None for p in shard_paths(folder))


def test_resume_checks_row_counts_against_the_metadata(data, capfd):
    folder = data / TASK
    meta = json.loads((folder / "metadata.json").read_text())
    name = shard_paths(folder)[0].name
    meta["shard_rows"][name] = 3  # as if the shard had lost a row since it was recorded
    (folder / "metadata.json").write_text(json.dumps(meta))
    _collect(data)
    assert "2 rows, but metadata.json recorded 3" in capfd.readouterr().err


def test_the_sampler_names_the_damaged_shard(data):
    from gato.data import DataConfig, SequenceSampler

    victim = shard_paths(data / TASK)[0]
    _flip_footer(victim)
    with pytest.raises(ShardError, match=f"cannot read shard {victim}: it is damaged"):
        SequenceSampler(DataConfig(data_dir=str(data), seq_len=64), "train")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_training_on_a_damaged_shard_is_one_line_naming_it(data, tmp_path, damage):
    victim = shard_paths(data / TASK)[0]
    DAMAGE[damage](victim)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "gato.train", "--size", "tiny", "--seq-len", "64", "--steps", "2",
         "--batch-size", "2", "--num-workers", "0", "--data-dir", str(data),
         "--run-dir", str(tmp_path / "run")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("python -m gato.train: error: "), errors
    assert f"cannot read shard {victim}: it is damaged" in errors[0], errors


@pytest.mark.slow  # two collection commands (and, with 2 workers, their spawned workers)
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_in_the_middle_of_a_shard_write_then_resume(pristine, tmp_path, workers):
    """Issue 13 item 9: SIGKILL while pyarrow is writing a shard (the writer is the command
    itself with 1 worker, a spawned worker with 2). The half-written file (a parquet header, no
    footer) never counts: the folder stays incomplete, the rerun removes it, collects those
    episodes again and ends with the same shards as a collection never interrupted."""
    from gato.collect_workers import KILL_MID_WRITE_ENV
    from gato.data_sources import list_complete_tasks

    cmd = [sys.executable, "-m", "gato.collect", "--task", TASK, "--episodes", "6",
           "--workers", str(workers), "--shard-size", "2", "--random-episodes", "1",
           "--max-steps", "30", "--data-dir", str(tmp_path), "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("GATO_DEBUG", None)
    killed = subprocess.run(cmd, cwd=REPO, env={**env, KILL_MID_WRITE_ENV: "2"},
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    folder = tmp_path / TASK
    if workers == 1:  # the command itself died in the write
        assert killed.returncode == -9, killed.stderr[-3000:]
    else:  # the worker died in the write; the command says so in one line
        assert killed.returncode == 1, killed.stderr[-3000:]
        assert "python -m gato.collect: error: a worker died while collecting" in killed.stderr
    (partial,) = folder.glob(".tmp-*-episodes-000002-000003.parquet")
    whole = (pristine / TASK / "episodes-000002-000003.parquet").stat().st_size
    assert 0 < partial.stat().st_size < whole
    with pytest.raises(Exception, match="magic bytes not found in footer"):
        pq.read_metadata(partial)  # killed during pyarrow's write, not between write and rename
    assert "episodes-000002-000003.parquet" not in [p.name for p in shard_paths(folder)]
    assert list_complete_tasks(tmp_path) == []  # nothing trains on the folder meanwhile

    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not list(folder.glob(".tmp-*")) and not (folder / ".lock").exists()
    if workers == 1:  # one writer: the shards themselves are the uninterrupted run's
        names = [p.name for p in shard_paths(folder)]
        assert names == [p.name for p in shard_paths(pristine / TASK)]
        for shard in shard_paths(folder):
            assert pq.read_table(shard).equals(pq.read_table(pristine / TASK / shard.name)), shard
    # With 2 workers the other one may have stored later shards before the kill, so the rerun's
    # shard boundaries can differ; the episodes themselves are the uninterrupted run's.
    ours = {e.episode_index: e for e in iter_episodes(folder)}
    theirs = {e.episode_index: e for e in iter_episodes(pristine / TASK)}
    assert sorted(ours) == sorted(theirs) == list(range(6))
    for i, episode in ours.items():
        assert episode.seed == theirs[i].seed
        np.testing.assert_array_equal(episode.actions, theirs[i].actions)
        np.testing.assert_array_equal(episode.rewards, theirs[i].rewards)
        for key, value in episode.observations.items():
            np.testing.assert_array_equal(value, theirs[i].observations[key])
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["complete"] and meta["episode_indices"] == list(range(6))
    assert list_complete_tasks(tmp_path) == [TASK]
