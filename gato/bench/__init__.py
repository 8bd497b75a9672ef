"""Benchmarks behind `make bench`.

Each module in this package named in `SUITES` exposes `run(quick: bool) -> list[dict]`: rows of
one table, each a flat dict of column -> value, with a "benchmark" column naming the row. The
runner prints every table and writes them all as JSON under experiments/results/.
"""

SUITES = ("tokenizer", "model", "data", "train", "policy", "rollout")
