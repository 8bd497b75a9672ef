"""`python -m gato.envs --list [--family F] [--specs]`: the registered tasks and their specs;
`--jat [--markdown]`: every JAT dataset config, the task it maps to and its status;
`--info TASK`: one task's env, package versions, specs and JAT status."""

from __future__ import annotations

import sys

from gato.cli import add_debug_flag
from gato.envs import FAMILIES, canonical_name, get_task, list_tasks
from gato.errors import OneLineParser, UserError, run_command


def _info(task: str) -> str:
    from gato.envs.jat_configs import jat_config, reference_env

    try:
        name = canonical_name(task)
    except ValueError as error:
        raise UserError(str(error)) from None
    info = get_task(name)
    lines = [
        f"task: {info.name} ({info.family})",
        f"env: {reference_env(name)}",
        "observations: " + ", ".join(f"{k}={s}" for k, s in sorted(info.obs_spec.items())),
        f"actions: {info.action_spec}",
        f"max_episode_steps: {info.max_episode_steps}",
    ]
    entry = jat_config(info.jat_name) if info.jat_name else None
    if entry is None:
        lines.append("JAT config: none (the JAT dataset has no data for this task)")
    else:
        lines.append(f"JAT config: {entry.config}, recorded in {entry.jat_env}: {entry.status}")
        lines += [f"  - {note}" for note in entry.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m gato.envs", description=__doc__)
    parser.add_argument("--list", action="store_true", help="list the registered tasks")
    parser.add_argument("--family", choices=FAMILIES, help="only this family's tasks")
    parser.add_argument(
        "--specs",
        action="store_true",
        help="also print each task's JAT name, observation/action specs, limit",
    )
    parser.add_argument(
        "--jat", action="store_true", help="every JAT dataset config, its task and status"
    )
    parser.add_argument("--markdown", action="store_true", help="--jat as a markdown table")
    parser.add_argument("--info", metavar="TASK", help="one task's env, versions and JAT status")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.info:
        print(_info(args.info))
        return
    if args.jat:
        from gato.envs.jat_configs import jat_table

        print(jat_table(markdown=args.markdown))
        return
    if not args.list:
        parser.print_help()
        return
    families = (args.family,) if args.family else FAMILIES
    for family in families:
        names = list_tasks(family)
        print(f"# {family}: {len(names)} tasks")
        for name in names:
            if not args.specs:
                print(name)
                continue
            info = get_task(name)
            obs = ", ".join(f"{key}={spec}" for key, spec in sorted(info.obs_spec.items()))
            print(
                f"{name}\tjat={info.jat_name}\t{obs}\taction={info.action_spec}"
                f"\tmax_steps={info.max_episode_steps}"
            )


if __name__ == "__main__":  # a user error is one line `python -m gato.envs: error: ...`, exit 2
    sys.exit(run_command(main, prog="python -m gato.envs"))
