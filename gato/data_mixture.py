"""The training mixture's sample weights (GATO_SPEC.md section 8; the paper's Table 1).

    >>> resolve_weights({"cartpole.balance": "dmc", "vl.scenes": "vl"}, {"vl": 2.0})
    {'cartpole.balance': 4.62, 'vl.scenes': 2.0}

A task is picked by sample weight, not by dataset size: its own weight if `task_weights` names it,
else its family's weight (given, or the family's Table 1 weight, FAMILY_WEIGHTS) split equally
among the family's tasks without a weight of their own. HELD_OUT_TASKS are left out of the
default mix (gato.data.SequenceSampler) for the fine-tuning experiments.
"""

from __future__ import annotations

from gato.datasets import MAKE_DATA_HINT

TEXT = "text"  # task and family name of text documents

# Held out from pretraining for the fine-tuning experiments (GATO_SPEC.md section 9): an empty
# `tasks` (the default mix) never includes them, even when their data is in the folder; naming
# them in `tasks` trains on them on purpose (as fine-tuning does).
HELD_OUT_TASKS = ("cartpole.swingup", "metaworld.assembly", "atari.boxing")
# Gato's Table 1 sample weights (percent) of the datasets each family here stands in for. The
# default weight of a family is split equally among its tasks in the mix.
FAMILY_WEIGHTS = {
    "atari": 9.5,  # ALE Atari
    "babyai": 9.06,  # BabyAI
    "dmc": 4.62,  # DM Control Suite (state observations)
    "metaworld": 8.96,  # Meta-World
    "mujoco": 8.23,  # Modular RL: MuJoCo locomotion, the closest dataset of Table 1
    TEXT: 6.7,  # MassiveText
    "vl": 8.0,  # the rest of Table 1's 14.7% vision/language (gato/vl/tasks.py)
}


def resolve_weights(families: dict[str, str], task_weights: dict[str, float]) -> dict[str, float]:
    """Unnormalized weight of every task (see DataConfig.task_weights); families: task -> family."""
    present = set(families.values())
    for key, w in task_weights.items():
        if key not in families and key not in present:
            kind = "family" if key in FAMILY_WEIGHTS else "task"
            raise ValueError(
                f"task_weights names {kind} {key!r}, which has no data in this mix (tasks: "
                f"{', '.join(sorted(families))}); {MAKE_DATA_HINT}, or add it to `tasks`"
            )
        if not w >= 0:
            raise ValueError(f"task_weights[{key!r}] must be >= 0, got {w}")
    out = {}
    for task, family in families.items():
        if task in task_weights:
            out[task] = float(task_weights[task])
            continue
        if family in task_weights:
            family_weight = float(task_weights[family])
        elif family in FAMILY_WEIGHTS:
            family_weight = FAMILY_WEIGHTS[family]
        else:
            raise ValueError(f"no default weight for family {family!r}: give task_weights")
        sharing = [t for t, f in families.items() if f == family and t not in task_weights]
        out[task] = family_weight / len(sharing)
    if not sum(out.values()) > 0:
        raise ValueError(f"every task has weight 0: {out}")
    return out
