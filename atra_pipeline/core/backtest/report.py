"""The risk report: one self-contained HTML file (charts embedded as PNG) and a Markdown summary."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from atra_pipeline.core.backtest.engine import trade_returns  # noqa: E402

CHARTS = ("equity_drawdown", "daily_returns_heatmap", "trade_returns", "monte_carlo_fan", "costs", "shap_importance")


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _equity(equity: pd.Series) -> str:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, height_ratios=[3, 1])
    top.plot(equity.index, equity.to_numpy(), color="tab:blue")
    top.set_ylabel("equity")
    top.set_title("Equity (realised, end of day)")
    drawdown = equity / equity.cummax() - 1
    bottom.fill_between(drawdown.index, drawdown.to_numpy(), 0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown")
    return _png(fig)


def _heatmap(daily_returns: pd.Series) -> str:
    r = daily_returns.dropna()
    frame = pd.DataFrame({"month": r.index.strftime("%Y-%m"), "day": r.index.day, "r": r.to_numpy()})
    grid = frame.pivot_table(index="month", columns="day", values="r", aggfunc="sum").reindex(columns=range(1, 32))
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.4 * max(len(grid), 1)))
    values = grid.to_numpy(dtype=float)
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.01
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_yticks(range(len(grid)), grid.index)
    ax.set_xticks(range(0, 31, 5), range(1, 32, 5))
    ax.set_title("Daily returns by month and day")
    fig.colorbar(image, ax=ax)
    return _png(fig)


def _trades(ledger: pd.DataFrame) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    r = trade_returns(ledger)
    if len(r):
        left.hist(r.to_numpy(), bins=40 if np.ptp(r.to_numpy()) > 1e-9 else 1,  # equal returns: one bin
                  color="tab:gray")
    left.set_title("Trade returns (net, on equity)")
    if {"mae", "mfe"} <= set(ledger.columns):
        colour = np.where(ledger["net_pnl"] > 0, "tab:green", "tab:red")
        right.scatter(ledger["mae"], ledger["mfe"], s=6, c=colour)
    right.set_xlabel("MAE")
    right.set_ylabel("MFE")
    right.set_title("Adverse vs favourable excursion")
    return _png(fig)


def _fan(fan: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(9, 3.5))
    x = np.arange(len(fan))
    ax.fill_between(x, fan["p5"], fan["p95"], alpha=0.2, color="tab:blue", label="5-95%")
    ax.fill_between(x, fan["p25"], fan["p75"], alpha=0.4, color="tab:blue", label="25-75%")
    ax.plot(x, fan["p50"], color="tab:blue", label="median")
    ax.set_xlabel("trade")
    ax.set_ylabel("wealth")
    ax.set_title("Monte Carlo: bootstrapped trade sequences")
    ax.legend()
    return _png(fig)


def _costs(ledger: pd.DataFrame) -> str:
    parts = {"gross P&L at mids": ledger["gross_pnl"].sum(), "slippage": -ledger["slippage_cost"].sum(),
             "fees": -ledger["fee_cost"].sum(), "funding": -ledger["funding_cost"].sum(),
             "net": ledger["net_pnl"].sum()}
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.bar(list(parts), list(parts.values()), color=["tab:blue", "tab:orange", "tab:orange", "tab:orange", "tab:green"])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("From gross to net P&L")
    return _png(fig)


def _shap(importance: pd.Series) -> str:
    top = importance.sort_values().tail(15)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.barh(top.index, top.to_numpy(), color="tab:purple")
    ax.set_title("Features by mean |SHAP|")
    return _png(fig)


def report_path(database: str | Path, model_id: str) -> Path:
    """Where a model's report lives: ``reports/<model_id>.html`` beside the DuckDB file."""
    return Path(database).parent / "reports" / f"{model_id}.html"


def report_complete(path: Path) -> bool:
    """The report at ``path`` holds every chart of :data:`CHARTS`."""
    text = path.read_text()
    return all(f'alt="{name}"' in text for name in CHARTS)


def render_report(path: Path, title: str, summary_md: str, equity: pd.Series, ledger: pd.DataFrame,
                  mc: dict, tables: dict[str, pd.DataFrame], importance: pd.Series) -> Path:
    """Write the report to ``path`` and return it."""
    daily = equity.pct_change().dropna()
    images = {
        "equity_drawdown": _equity(equity), "daily_returns_heatmap": _heatmap(daily), "trade_returns": _trades(ledger),
        "monte_carlo_fan": _fan(mc["fan"]), "costs": _costs(ledger), "shap_importance": _shap(importance),
    }
    blocks = [f"<h1>{html.escape(title)}</h1>", f"<pre>{html.escape(summary_md)}</pre>"]
    for name in CHARTS:
        blocks.append(f'<h2>{name.replace("_", " ")}</h2><img alt="{name}" src="data:image/png;base64,{images[name]}">')
    for name, table in tables.items():
        blocks.append(f"<h2>{html.escape(name)}</h2>" + table.to_html(index=False, float_format=lambda v: f"{v:.6g}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
                    "<style>body{font-family:sans-serif;max-width:1000px;margin:auto} table{border-collapse:collapse}"
                    " td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>" + "".join(blocks)
                    + "</body></html>")
    return path
