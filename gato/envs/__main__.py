"""`python -m gato.envs --list [--family F]`: the registered tasks and their specs."""

from __future__ import annotations

import sys

from gato.cli import add_debug_flag
from gato.envs import FAMILIES, get_task, list_tasks
from gato.errors import OneLineParser, run_command


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m gato.envs", description=__doc__)
    parser.add_argument("--list", action="store_true", help="list the registered tasks")
    parser.add_argument("--family", choices=FAMILIES, help="only this family's tasks")
    parser.add_argument(
        "--specs",
        action="store_true",
        help="also print each task's JAT name, observation/action specs, limit",
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)
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
