"""Training metrics: a CSV anyone can open, TensorBoard scalars, and the loss-curve PNG.

`<run>/metrics.csv` has one row per logged step and one column per metric: `loss` (the masked
cross-entropy of each step's global batch, averaged over the steps since the previous row),
`loss/<domain>` (the logged step's batch, per domain), `lr`, `grad_norm`, `tokens_per_s`, `mfu`,
and at evaluation steps `val_loss` and `val_loss/<domain>`. A column that first appears late (a
new domain) rewrites the file with the wider header. On resume, rows past the checkpoint's step
are dropped first, so the file reads as one uninterrupted run. `<run>/tb/` holds the same scalars
for TensorBoard.

Only rank 0 writes; other ranks get a logger whose methods do nothing.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

CSV_NAME = "metrics.csv"
PLOT_NAME = "loss.png"


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics CSV as {column: float} (empty cells left out)."""
    path = Path(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


class TrainLogger:
    """Writes metrics rows to CSV and TensorBoard (rank 0 only: pass enabled=False elsewhere)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, resume_step: int | None = None):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / CSV_NAME
        self.rows: list[dict[str, float]] = []
        self.columns: list[str] = ["step"]
        self._tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            # Keep what the checkpointed run logged up to its step; later rows will be redone.
            self.rows = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
            for row in self.rows:
                self.columns += [c for c in row if c not in self.columns]
        self._rewrite()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=resume_step)
        except ImportError:  # tensorboard is optional: the CSV has everything
            self._tb = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record one step's metrics (NaN / None values are left out)."""
        if not self.enabled or not metrics:
            return
        row = {"step": float(step)}
        row.update({k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(v)})
        self.rows.append(row)
        new = [c for c in row if c not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                self._writer(f).writerow(_format(row))
        if self._tb is not None:
            for k, v in row.items():
                if k != "step":
                    self._tb.add_scalar(k, v, step)

    def _writer(self, f) -> csv.DictWriter:
        return csv.DictWriter(f, fieldnames=self.columns, restval="")

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            writer = self._writer(f)
            writer.writeheader()
            writer.writerows(_format(r) for r in self.rows)
        tmp.replace(self.path)

    def close(self) -> Path | None:
        """Flush TensorBoard and draw the loss curve; returns the PNG's path."""
        if not self.enabled:
            return None
        if self._tb is not None:
            self._tb.close()
        return plot_losses(self.rows, self.run_dir / PLOT_NAME) if self.rows else None


def _format(row: dict[str, float]) -> dict[str, str]:
    # repr-exact floats (17 significant digits) so resumed and uninterrupted runs compare bitwise
    return {k: (str(int(v)) if k == "step" else repr(v)) for k, v in row.items()}


def plot_losses(rows: list[dict[str, float]], path: Path) -> Path:
    """Training loss (and validation loss per domain, if any) against the step, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    if train:
        ax.plot(*zip(*train, strict=True), lw=1.5, label="train loss")
    val_keys = sorted({k for r in rows for k in r if k.startswith("val_loss")})
    for key in val_keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        style = dict(lw=2, marker="o", ms=3) if key == "val_loss" else dict(lw=1, ls="--")
        ax.plot(*zip(*pts, strict=True), label=key.replace("val_loss", "val"), **style)
    ax.set(xlabel="step", ylabel="masked cross-entropy (text + action tokens)", yscale="log")
    ax.set_title("training loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
