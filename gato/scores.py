"""Per-task random and expert returns, and Gato's normalized score (GATO_SPEC.md section 9).

``normalized_score(task, raw) = (raw - random) / (expert - random)``: 0 = a uniformly random
policy, 1 (100%) = the expert. The table ships inside the package (``gato/data/scores.json``) and
is read with importlib.resources, so it works from a non-editable install. It is refreshed from
collected data with ``python -m gato.scores --update-from DATA_DIR``: the expert return is the
paper's windowed formula over the collected episodes, the random return the mean return of the
random policy measured at collection time (both from each task's metadata.json). Folders made by
``python -m gato.collect --from-hub`` (the JAT dataset's episodes) get entries the same way: the
expert return over the hub's episodes, the random return from rollouts here, and each entry's
``source`` says which.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

SCORES_RESOURCE = "data/scores.json"


@functools.lru_cache(maxsize=1)
def load_scores() -> dict[str, dict]:
    """The shipped table: task -> {"random": float, "expert": float, ...}."""
    text = resources.files("gato").joinpath(SCORES_RESOURCE).read_text()
    return dict(json.loads(text)["tasks"])


def _entry(task: str, table: Mapping[str, dict] | None) -> dict:
    table = load_scores() if table is None else table
    if task in table:
        return table[task]
    try:  # a JAT alias such as 'metaworld-assembly'
        from gato.envs import get_task

        name = get_task(task).name
        if name in table:
            return table[name]
    except Exception:
        pass
    raise KeyError(
        f"no random/expert returns for task {task!r} in the score table; collect it "
        "(python -m gato.collect --task ...) and run "
        "`python -m gato.scores --update-from DATA_DIR`"
    )


def normalized_score(
    task: str, raw_return: float, table: Mapping[str, dict] | None = None
) -> float:
    """(raw - random) / (expert - random): 0.0 = random policy, 1.0 = expert (may exceed 1)."""
    e = _entry(task, table)
    random, expert = float(e["random"]), float(e["expert"])
    if expert == random:
        raise ValueError(
            f"{task}: expert and random returns are equal ({expert}): "
            "the normalized score is undefined"
        )
    return (float(raw_return) - random) / (expert - random)


def table_from_data(data_dir: str | Path, old: Mapping[str, dict] | None = None) -> dict:
    """Score entries from every complete task metadata.json under ``data_dir``, merged into
    ``old`` (tasks not collected there keep their entries)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist; make it with `make data`")
    table = {k: dict(v) for k, v in (old or {}).items()}
    for meta_path in sorted(root.glob("*/metadata.json")):
        meta = json.loads(meta_path.read_text())
        if not meta.get("complete") or meta.get("policy") != "expert":
            continue
        if meta.get("random_return") is None or meta.get("expert_return") is None:
            continue
        table[meta["task"]] = {
            "random": round(float(meta["random_return"]), 4),
            "expert": round(float(meta["expert_return"]), 4),
            "expert_episodes": meta["episodes"],
            "random_episodes": len(meta.get("random_returns", [])),
            "success_rate": meta.get("success_rate"),
            "source": entry_source(meta),
        }
    return table


# What the shipped entries written before sources were recorded came from (gato.collect's experts).
_UNRECORDED = "collected here by gato.collect (expert and random policies); source not recorded"


def entry_source(meta: Mapping) -> dict:
    """Where a task's two returns came from (issue 15 item 4), from its metadata.json.

    The expert return is always the windowed formula over the folder's episodes; those episodes
    are the hub's when the metadata says `"source": "hub:<repo>/<config>"` (data streamed from the
    JAT dataset), else gato.collect's expert's. The random return is measured here, by rollouts of
    the uniformly random policy in the task's env, which is named with its package versions.
    """
    episodes = meta.get("source") or "gato.collect's expert, here"
    window = meta.get("expert_window")
    source = {
        "expert": f"windowed expert return (window {window}) over {meta['episodes']} episodes "
        f"from {episodes}",
        "random": f"mean of {len(meta.get('random_returns', []))} random-policy rollouts here",
    }
    if meta.get("random_max_steps") is not None and meta.get("source"):
        # hub episodes: the random policy played their horizon (gato/collect_hub.py)
        source["random"] += (
            f", at most {meta['random_max_steps']} steps (the hub episodes' longest)"
        )
    try:
        from gato.envs.jat_configs import reference_env

        source["env"] = reference_env(meta["task"])
    except (ValueError, KeyError):  # not a registered task (a user's own folder): no env to name
        pass
    return source


def score_source(task: str, table: Mapping[str, dict] | None = None) -> dict:
    """Where the table's returns for `task` came from (entries older than this field: collected)."""
    entry = _entry(task, table)
    return dict(entry.get("source") or {"expert": _UNRECORDED, "random": _UNRECORDED})


def source_table_path() -> Path:
    """gato/data/scores.json of this checkout (what --update-from writes by default)."""
    return Path(__file__).resolve().parent / SCORES_RESOURCE


def write_table(table: Mapping[str, dict], path: str | Path) -> None:
    from gato.datasets import write_json_atomic

    write_json_atomic(
        path,
        {
            "about": "Per-task returns for normalized scores: 'expert' = the best mean return over "
            "W = max(1, min(1000, N // 10)) consecutive collected expert episodes, 'random' "
            "= the mean return of a uniformly random policy; 'source' says where each came from "
            "(the hub's episodes or this project's collection; rollouts here). Refresh with "
            "`python -m gato.scores --update-from DATA_DIR`.",
            "tasks": dict(sorted(table.items())),
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gato.scores",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--update-from",
        metavar="DATA_DIR",
        help="refresh the table from DATA_DIR/<task>/metadata.json",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="where to write the table (default: gato/data/scores.json of this checkout)",
    )
    args = parser.parse_args(argv)
    if args.update_from:
        out = Path(args.out) if args.out else source_table_path()
        old = json.loads(out.read_text())["tasks"] if out.is_file() else {}
        try:
            table = table_from_data(args.update_from, old)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        write_table(table, out)
        load_scores.cache_clear()
        print(f"wrote {len(table)} tasks to {out}")
        return 0
    for task, e in sorted(load_scores().items()):
        print(f"{task:40s} random {e['random']:>10.3f}   expert {e['expert']:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
