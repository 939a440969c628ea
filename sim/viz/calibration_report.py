"""``calibration.html``: each fitted distribution of a calibration against its data.

For each delay, the data's Kaplan-Meier survival curve (``scipy.stats.ecdf`` on the censored
observations) is drawn with the survival of the three fitted families, the chosen one in bold;
for the amounts, the empirical survival and the fits. Self-contained, like ``report.html``.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from .. import __version__
from .plots import ChartFigure, literal_text
from .report import CSS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..audit.calibrate import Calibration, Fit

STYLE = {"exponential": "#2980b9", "lognormal": "#c0392b", "gamma": "#27ae60"}


def kaplan_meier(fit: Fit) -> tuple[np.ndarray, np.ndarray]:
    """The data's survival curve: Kaplan-Meier over observed and right-censored values."""
    if len(fit.right):
        data: Any = stats.CensoredData(uncensored=fit.observed, right=fit.right)
    else:
        data = fit.observed
    sf = stats.ecdf(data).sf
    return sf.quantiles, sf.probabilities


def fit_figure(fit: Fit) -> Figure:
    """One fit: Kaplan-Meier steps and each family's survival (conditional on the truncation)."""
    from ..audit.calibrate import fit_family

    fig = ChartFigure(figsize=(7.5, 3.4), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    x, y = kaplan_meier(fit)
    ax.step(np.concatenate([[0.0], x]), np.concatenate([[1.0], y]), where="post", color="#333", lw=1.4,
            label="data (Kaplan-Meier)")  # fmt: skip
    top = float(
        np.quantile(np.concatenate([fit.observed, fit.right]) if len(fit.right) else fit.observed, 0.995)
    )
    grid = np.linspace(0, max(top, 1e-6), 400)
    for family in STYLE:
        params = (
            fit.params
            if family == fit.family
            else fit_family(family, fit.observed, fit.right, fit.truncated_at)[0]
        )
        d = fit.frozen(family, params)
        sf = d.sf(grid)
        if fit.truncated_at is not None:
            cut = d.cdf(fit.truncated_at)
            sf = np.clip((sf - d.sf(fit.truncated_at)) / max(cut, 1e-12), 0, 1)
        chosen = family == fit.family
        ax.plot(grid, sf, color=STYLE[family], lw=2.6 if chosen else 1.0, ls="-" if chosen else "--",
                label=f"{family}{' (chosen)' if chosen else ''}, AIC {fit.aic[family]:.1f}")  # fmt: skip
    unit = "days" if fit.unit == "d" else "amount (major units)"
    ax.set_xlabel(unit)
    ax.set_ylabel("share still waiting" if fit.unit == "d" else "share above")
    extra = f", {fit.censored_share:.0%} censored" if fit.censored else ""
    ax.set_title(f"{fit.what}: n={fit.n:,}{extra}")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=8)
    return literal_text(fig)


def _png(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(cal: Calibration) -> str:
    """The page: the written population, then one chart per fit."""
    fits = list(cal.fits.values()) + ([cal.amount] if cal.amount is not None else [])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Calibration from {html.escape(cal.log)} — milestone-sim</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>Calibration from <code>{html.escape(cal.log)}</code></h1>"
        f'<p class="meta">{cal.obs.rows:,} rows · {len(cal.obs.arrivals):,} contracts · '
        f"policy <code>{html.escape(cal.policy.policy)}</code></p></header>",
        '<section id="population"><h2>The population written</h2>'
        f"<pre>{html.escape(cal.yaml())}</pre></section>",
        '<section id="fits"><h2>Each fit against the data</h2>'
        '<p class="note">The black steps are the data (Kaplan-Meier, which counts a delay a timer cut '
        "short as lasting at least that long); the bold line is the family with the lowest AIC.</p>",
    ]
    for fit in fits:
        parts.append(
            f'<figure id="fit-{html.escape(fit.what)}">'
            f'<img src="data:image/png;base64,{_png(fit_figure(fit))}" '
            f'alt="{html.escape(fit.what)}"></figure>'
        )
    parts.append(
        f"</section><footer>Written by milestone-sim {html.escape(__version__)}.</footer>"
        "</main></body></html>"
    )
    return "\n".join(parts) + "\n"
