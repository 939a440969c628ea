"""A population estimated from a marketplace's event log (FORMAT section 10): ``milestone-sim calibrate``.

The log is read as an audit reads it (:mod:`sim.audit.log`); each contract's rows give the
observations the population of section 6 samples: when offers arrive, how many milestones and of
what amounts, and every delay and decision of the parties.

A delay a timer cut short is a *censored* observation: a client still silent when the review
window released the money took longer than the window, how much longer is unknown. So is a delay
still running when the log ends. Delays are fitted by censored maximum likelihood (observed:
log density; censored: log survival) over exponential, lognormal and gamma, and the family with
the lowest AIC is written. A freelancer's answer to a refund request is only seen when it came
within the answer window, so those delays are fitted *truncated* at the window, and the share of
silent freelancers is corrected for the answers that would have come too late.

Parameters come with 95% intervals from the observed information (a numerical Hessian of the
log-likelihood on the log scale), decision mixes with Wilson intervals. Everything is fitted with
scipy (see the README's design section for why not lifelines).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

from ..core.units import format_money
from ..policy.model import Policy
from .log import LogReader, Mapping, read_contracts

FAMILIES = ("exponential", "lognormal", "gamma")
Z95 = 1.959963984540054
#: below this goodness-of-fit p-value no family fits: the milestone count or amounts are written
#: as an empirical distribution (a CSV beside the population file)
FIT_P = 0.001


# ------------------------------------------------------------------------------ fitting


@dataclass
class Fit:
    """A fitted delay (or amount) distribution: the chosen family, its parameters in the
    population's terms with 95% intervals, and what it was fitted to."""

    what: str
    family: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    n: int
    censored: int
    aic: dict[str, float]
    observed: np.ndarray = field(repr=False)
    right: np.ndarray = field(repr=False)
    truncated_at: float | None = None
    unit: str = "d"

    @property
    def censored_share(self) -> float:
        return self.censored / self.n if self.n else 0.0

    def mean(self) -> float:
        p = self.params
        if self.family == "exponential":
            return p["mean"]
        if self.family == "gamma":
            return p["mean"]
        return p["median"] * math.exp(p["sigma"] ** 2 / 2)

    def frozen(self, family: str | None = None, params: dict[str, float] | None = None) -> Any:
        return _frozen(family or self.family, params or self.params)


def _frozen(family: str, p: dict[str, float]) -> Any:
    if family == "exponential":
        return stats.expon(scale=p["mean"])
    if family == "lognormal":
        return stats.lognorm(s=p["sigma"], scale=p["median"])
    k = 1.0 / p["cv"] ** 2
    return stats.gamma(a=k, scale=p["mean"] / k)


def _params(family: str, theta: np.ndarray) -> dict[str, float]:
    """The population's parameters from the log-scale vector the optimizer moves."""
    if family == "exponential":
        return {"mean": float(np.exp(theta[0]))}
    if family == "lognormal":
        return {"median": float(np.exp(theta[0])), "sigma": float(np.exp(theta[1]))}
    return {"mean": float(np.exp(theta[0])), "cv": float(np.exp(theta[1]))}


def _nll(family: str, theta: np.ndarray, obs: np.ndarray, cens: np.ndarray, trunc: float | None) -> float:
    if not np.all(np.isfinite(theta)) or np.any(np.abs(theta) > 50):
        return math.inf
    d = _frozen(family, _params(family, theta))
    ll = float(np.sum(d.logpdf(obs))) + (float(np.sum(d.logsf(cens))) if len(cens) else 0.0)
    if trunc is not None:
        ll -= len(obs) * float(d.logcdf(trunc))
    return -ll if math.isfinite(ll) else math.inf


def _hessian(f: Any, x: np.ndarray) -> np.ndarray:
    """The Hessian of ``f`` at ``x`` by central differences (steps scaled to ``x``)."""
    n = len(x)
    h = 1e-4 * np.maximum(1.0, np.abs(x))
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * h[i], np.eye(n)[j] * h[j]
            v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h[i] * h[j])
            out[i, j] = out[j, i] = v
    return out


def _start(family: str, obs: np.ndarray, cens: np.ndarray) -> np.ndarray:
    pooled = np.concatenate([obs, cens]) if len(cens) else obs
    mean = max(float(np.mean(pooled)), 1e-6)
    if family == "exponential":
        return np.array([math.log(mean)])
    logs = np.log(np.maximum(obs, 1e-9))
    if family == "lognormal":
        return np.array([float(np.median(logs)), math.log(max(float(np.std(logs)), 0.05))])
    cv = max(float(np.std(pooled)) / mean, 0.05)
    return np.array([math.log(mean), math.log(cv)])


def fit_family(
    family: str, observed: np.ndarray, right: np.ndarray, truncated_at: float | None = None
) -> tuple[dict[str, float], dict[str, tuple[float, float]], float]:
    """Censored (and optionally truncated) maximum likelihood of one family: its parameters,
    their 95% intervals and its AIC."""

    def f(theta: np.ndarray) -> float:
        return _nll(family, theta, observed, right, truncated_at)

    x0 = _start(family, observed, right)
    best = optimize.minimize(
        f, x0, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000}
    )
    best = optimize.minimize(f, best.x, method="BFGS")
    theta = best.x
    params = _params(family, theta)
    k = len(theta)
    try:
        cov = np.linalg.inv(_hessian(f, theta))
        se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    except np.linalg.LinAlgError:
        se = np.full(k, np.nan)
    names = list(params)
    intervals = {
        name: (float(math.exp(theta[i] - Z95 * se[i])), float(math.exp(theta[i] + Z95 * se[i])))
        for i, name in enumerate(names)
    }
    return params, intervals, 2 * k + 2 * float(best.fun)


def fit_delay(
    what: str, observed: Iterable[float], right: Iterable[float] = (), truncated_at: float | None = None
) -> Fit | None:
    """Fit every family to the observations (``right``: right-censored ones) and keep the one with
    the lowest AIC. None when fewer than 5 observations are uncensored."""
    obs = np.asarray([x for x in observed if x > 0], dtype=float)
    cens = np.asarray([x for x in right if x > 0], dtype=float)
    if len(obs) < 5:
        return None
    fits = {fam: fit_family(fam, obs, cens, truncated_at) for fam in FAMILIES}
    aic = {fam: fits[fam][2] for fam in FAMILIES}
    family = min(FAMILIES, key=lambda fam: (aic[fam], FAMILIES.index(fam)))
    params, intervals, _ = fits[family]
    return Fit(what, family, params, intervals, len(obs) + len(cens), len(cens), aic, obs, cens, truncated_at)


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval of a share k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + Z95**2 / n
    mid = (p + Z95**2 / (2 * n)) / den
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


@dataclass
class Mix:
    """A decision mix: counts per choice, with shares and Wilson intervals."""

    what: str
    counts: dict[str, int]

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def share(self, key: str) -> float:
        return self.counts.get(key, 0) / self.n if self.n else 0.0


# ------------------------------------------------------------------------------ observations


@dataclass
class _Contract:
    offer: float | None = None
    accepted_at: float | None = None
    answered: bool = False
    funded: dict[str, float] = field(default_factory=dict)
    submitted: dict[str, float] = field(default_factory=dict)  # the open submission of a milestone
    changes: dict[str, float] = field(default_factory=dict)  # an open request for changes
    working: dict[str, float] = field(default_factory=dict)  # work started (funded and active)
    released_at: float | None = None  # the last release, which the next funding follows
    refund_asked: dict[str, float] = field(default_factory=dict)
    disputed: dict[str, float] = field(default_factory=dict)
    fund_wait: float | None = None  # when the next funding's delay started
    planned: int = 0  # milestones not yet funded: a release is followed by a funding only while some are


@dataclass
class Observations:
    """What the log shows of each thing the population samples."""

    arrivals: list[float] = field(default_factory=list)
    fund: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    accept: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    accepted: int = 0
    declined: int = 0
    withdraw: list[float] = field(default_factory=list)
    work: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    review: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    decisions: dict[str, int] = field(default_factory=dict)
    partial: list[float] = field(default_factory=list)
    bonus: list[float] = field(default_factory=list)
    rework: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    refund_answer: list[float] = field(default_factory=list)
    refund_answers: dict[str, int] = field(default_factory=dict)
    refund_window: list[float] = field(default_factory=list)
    dispute_handling: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    dispute_outcomes: dict[str, int] = field(default_factory=dict)
    split: list[float] = field(default_factory=list)
    disputes_open: list[tuple[float, int]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)
    horizon: float = 0.0
    rows: int = 0
    origin: dt.datetime | None = None  # the instant of t = 0, when the log has timestamps


def observe(log: str | Path, contracts: str | Path, policy: Policy, **reader: Any) -> Observations:
    """Read the log and collect the observations (censored ones at the log's end)."""
    declared = read_contracts(contracts, policy.digits, reader.get("mapping"))
    amounts = {(cid, mid): amt for cid, c in declared.items() for mid, amt, _due in c.milestones}
    obs = Observations()
    for c in declared.values():
        obs.counts.append(len(c.milestones))
        obs.amounts.extend(a for _m, a, _d in c.milestones)
    state: dict[str, _Contract] = {}
    log_reader = LogReader(log, declared, policy.digits, openers=policy.openers, **reader)
    for chunk in log_reader:
        for row in chunk:
            obs.rows += 1
            c = state.get(row.contract)
            if c is None:
                c = state[row.contract] = _Contract(planned=len(declared[row.contract].milestones))
            _step(obs, c, row, amounts, dict(row.args))
    end = log_reader.last_time
    obs.horizon = end
    obs.origin = log_reader.origin
    for c in state.values():  # what was still running when the log ended: censored there
        if c.offer is not None and not c.answered:
            obs.accept[1].append(end - c.offer)
        if c.fund_wait is not None:
            obs.fund[1].append(end - c.fund_wait)
        obs.work[1].extend(end - t for t in c.working.values())
        obs.review[1].extend(end - t for t in c.submitted.values())
        obs.rework[1].extend(end - t for t in c.changes.values())
        obs.dispute_handling[1].extend(end - t for t in c.disputed.values())
    return obs


def _step(obs: Observations, c: _Contract, row: Any, amounts: dict, args: dict) -> None:
    t, a, actor, mid = row.time, row.action, row.actor, row.milestone
    ok = not row.rejected
    if actor == "client":
        if a == "offer" and ok and c.offer is None:
            c.offer = t
            c.fund_wait = t
            obs.arrivals.append(t)
        elif a == "fund":
            if c.fund_wait is not None:
                obs.fund[0].append(t - c.fund_wait)
                c.fund_wait = None
            if ok:
                c.funded[mid] = t
                c.planned -= 1
                if c.accepted_at is not None:
                    c.working[mid] = t
        elif a == "add_milestone" and ok:
            c.planned += 1
        elif a == "withdraw_offer" and ok and c.offer is not None:
            obs.withdraw.append(t - c.offer)
            _closed_offer(obs, c, t)
            if not c.answered:  # the freelancer's answer would have come later: censored here
                c.answered = True
                obs.accept[1].append(t - c.offer)
        elif a in ("approve", "request_changes", "request_refund", "end_contract"):
            _decision(obs, c, row, amounts, args)
    elif actor == "freelancer":
        if a in ("accept_offer", "decline_offer") and c.offer is not None and not c.answered:
            c.answered = True
            obs.accept[0].append(t - c.offer)
            if a == "accept_offer":
                obs.accepted += 1
                if ok:
                    c.accepted_at = t
                    for m, ft in c.funded.items():
                        if m not in c.submitted:
                            c.working.setdefault(m, max(ft, t))
            else:
                obs.declined += 1
                if ok:
                    _closed_offer(obs, c, t)
        elif a == "submit" and ok:
            if mid in c.working:
                obs.work[0].append(t - c.working.pop(mid))
            if mid in c.changes:
                obs.rework[0].append(t - c.changes.pop(mid))
            c.submitted[mid] = t
        elif a in ("approve_refund", "dispute") and ok:
            for m, at in list(c.refund_asked.items()):
                obs.refund_answer.append(t - at)
                key = "approve" if a == "approve_refund" else "dispute"
                obs.refund_answers[key] = obs.refund_answers.get(key, 0) + 1
                del c.refund_asked[m]
                if a == "dispute":
                    c.disputed[m] = t
                    obs.disputes_open.append((t, 1))
    elif actor == "platform":
        if a == "offer_expired" and c.offer is not None:
            _closed_offer(obs, c, t)
            if not c.answered:
                c.answered = True
                obs.accept[1].append(t - c.offer)
        elif a == "auto_approve" and mid in c.submitted:
            obs.review[1].append(t - c.submitted.pop(mid))
            c.released_at = t
            c.fund_wait = t if c.planned > 0 else None
        elif a == "auto_refund":
            for m, at in list(c.refund_asked.items()):
                obs.refund_answers["silent"] = obs.refund_answers.get("silent", 0) + 1
                obs.refund_window.append(t - at)
                del c.refund_asked[m]
        elif a == "resolve_dispute" and ok:
            for m, at in list(c.disputed.items()):
                obs.dispute_handling[0].append(t - at)
                obs.disputes_open.append((t, -1))
                del c.disputed[m]
            release, refund = args.get("release"), args.get("refund")
            if release is not None and refund is not None:
                if refund == 0:
                    outcome = "release"
                elif release == 0:
                    outcome = "refund"
                else:
                    outcome = "split"
                    obs.split.append(release / (release + refund))
                obs.dispute_outcomes[outcome] = obs.dispute_outcomes.get(outcome, 0) + 1


def _closed_offer(obs: Observations, c: _Contract, t: float) -> None:
    """The offer was declined, withdrawn or expired: a funding still to come never will be (its
    delay is censored here), and nothing more happens on the contract."""
    if c.fund_wait is not None:
        obs.fund[1].append(t - c.fund_wait)
        c.fund_wait = None


def _decision(obs: Observations, c: _Contract, row: Any, amounts: dict, args: dict) -> None:
    t, a, mid = row.time, row.action, row.milestone
    if row.rejected:
        return
    if a == "end_contract":
        c.fund_wait = None  # nothing more will be funded
        return  # a refund's end_contract: the request_refund that follows is the decision
    if a == "request_refund":
        c.fund_wait = None  # the contract is winding up
        c.refund_asked[mid or "*"] = t
        target = mid if mid in c.submitted else next(iter(c.submitted), None)
        if target is not None:
            obs.review[0].append(t - c.submitted.pop(target))
            obs.decisions["refund"] = obs.decisions.get("refund", 0) + 1
        return
    if mid not in c.submitted:
        return
    obs.review[0].append(t - c.submitted.pop(mid))
    if a == "request_changes":
        obs.decisions["request_changes"] = obs.decisions.get("request_changes", 0) + 1
        c.changes[mid] = t
        return
    held = amounts.get((row.contract, mid))
    paid = args.get("amount", row.amount)
    choice = "approve"
    if held and paid and paid < held:
        choice = "partial"
        obs.partial.append(paid / held)
    elif held and paid and paid > held:
        choice = "bonus"
        obs.bonus.append(paid / held - 1)
    obs.decisions[choice] = obs.decisions.get(choice, 0) + 1
    c.released_at = t
    c.fund_wait = t if c.planned > 0 else None


# ------------------------------------------------------------------------------ the population


@dataclass
class Calibration:
    """The estimated population: fits, mixes, and the YAML that writes it."""

    policy: Policy
    obs: Observations
    fits: dict[str, Fit]
    mixes: dict[str, Mix]
    rate: tuple[float, float, float]  # per day, 95% interval
    count_mean: tuple[float, float, float]
    amount: Fit | None
    log: str
    start: dt.date | None
    #: goodness of fit: the count's chi-square p and the amounts' Kolmogorov-Smirnov p
    count_p: float = 1.0
    amount_p: float = 1.0
    #: where an empirical count or amount distribution is read from (``data_file()`` writes it)
    data_name: str = "population_data.csv"

    @property
    def empirical(self) -> dict[str, np.ndarray]:
        """What no family fits, as its data: ``count`` and/or ``amount`` (major units)."""
        out: dict[str, np.ndarray] = {}
        if self.count_p < FIT_P:
            out["count"] = np.asarray(self.obs.counts, dtype=float)
        if self.amount is None or self.amount_p < FIT_P:
            out["amount"] = np.asarray(self.obs.amounts, dtype=np.int64)
        return out

    def data_file(self) -> str | None:
        """The CSV of the empirical distributions (columns ``count`` and ``amount``), or None."""
        emp = self.empirical
        if not emp:
            return None
        d = self.policy.digits
        counts = [f"{int(v)}" for v in emp.get("count", [])]
        amounts = [format_money(int(v), d) for v in emp.get("amount", [])]
        rows = ["count,amount"]
        for i in range(max(len(counts), len(amounts))):
            rows.append(f"{counts[i] if i < len(counts) else ''},{amounts[i] if i < len(amounts) else ''}")
        return "\n".join(rows) + "\n"

    def yaml(self) -> str:
        """The population scenario, every value commented with where it came from."""
        return _yaml(self)

    def summary_text(self) -> str:
        """One line per fitted delay: the family, the mean, n and the censored share."""
        obs = self.obs
        lines = [
            f"Calibrated from {obs.rows:,} rows: {len(obs.arrivals):,} contracts over {_num(obs.horizon)}d, "
            f"{_num(self.rate[0])} offers a day"
        ]
        for fit in self.fits.values():
            lines.append(
                f"  {fit.what:<36} {fit.family:<12} mean {_num(fit.mean())}d  n={fit.n:,}  "
                f"censored {fit.censored_share:.1%}"
            )
        return "\n".join(lines)


def calibrate(
    log: str | Path,
    contracts: str | Path,
    policy: Policy,
    *,
    mapping: Mapping | None = None,
    start: dt.date | None = None,
) -> Calibration:
    """Estimate a population (FORMAT section 6) from a log; see the module's docstring."""
    obs = observe(log, contracts, policy, mapping=mapping, start=start)
    fits: dict[str, Fit] = {}
    for name, (o, r) in (
        ("client.fund_delay", obs.fund),
        ("freelancer.accept.delay", obs.accept),
        ("freelancer.work", obs.work),
        ("client.review.delay", obs.review),
        ("freelancer.rework", obs.rework),
        ("platform.dispute_handling", obs.dispute_handling),
    ):
        fit = fit_delay(name, o, r)
        if fit is not None:
            fits[name] = fit
    window = max(obs.refund_window) if obs.refund_window else None
    fit = fit_delay("freelancer.refund_response.delay", obs.refund_answer, (), truncated_at=window)
    if fit is not None:
        fits[fit.what] = fit
    withdraw = fit_delay("client.withdraw.delay", obs.withdraw)
    if withdraw is not None:
        fits[withdraw.what] = withdraw
    mixes = {
        "client.review.decision": Mix("client.review.decision", dict(obs.decisions)),
        "freelancer.accept": Mix("freelancer.accept", {"accept": obs.accepted, "decline": obs.declined}),
        "freelancer.refund_response": Mix("freelancer.refund_response", dict(obs.refund_answers)),
        "platform.dispute_outcome": Mix("platform.dispute_outcome", dict(obs.dispute_outcomes)),
    }
    n = len(obs.arrivals)
    span = max(obs.horizon, 1e-9)
    low = stats.chi2.ppf(0.025, 2 * n) / 2 / span if n else 0.0
    high = stats.chi2.ppf(0.975, 2 * n + 2) / 2 / span
    counts = np.asarray(obs.counts, dtype=float)
    count_mean = _clipped_poisson(counts)
    amounts = np.asarray(obs.amounts, dtype=float) / 10**policy.digits
    amount = fit_delay("milestones.amount", amounts)
    amount_p = 0.0
    if amount is not None:
        amount.unit = "money"
        amount_p = float(stats.kstest(amounts, amount.frozen().cdf).pvalue)
    count_p = _count_fit(counts, count_mean[0])
    if start is None and obs.origin is not None:
        start = obs.origin.date()
    return Calibration(
        policy,
        obs,
        fits,
        mixes,
        (n / span, low, high),
        count_mean,
        amount,
        str(log),
        start,
        count_p,
        amount_p,
    )


def _count_fit(counts: np.ndarray, lam: float) -> float:
    """Chi-square goodness of fit of ``max(1, Poisson(lam))`` to the counts (cells merged from the
    top until each expects at least 5)."""
    if len(counts) < 10:
        return 1.0
    top = int(counts.max())
    k = np.arange(1, top + 1)
    probs = stats.poisson.pmf(k, lam)
    probs[0] += stats.poisson.pmf(0, lam)
    probs[-1] += stats.poisson.sf(top, lam)
    seen = np.array([(counts == v).sum() for v in k], dtype=float)
    expected = probs * len(counts)
    while len(expected) > 2 and expected[-1] < 5:
        expected[-2] += expected[-1]
        seen[-2] += seen[-1]
        expected, seen = expected[:-1], seen[:-1]
    if len(expected) < 3:
        return 1.0
    return float(stats.chisquare(seen, expected, ddof=1).pvalue)


def _clipped_poisson(counts: np.ndarray) -> tuple[float, float, float]:
    """The mean of a Poisson count written with ``minimum: 1`` (a 0 counts as 1): its MLE and
    95% interval (from the observed information)."""
    ones = float(np.sum(counts <= 1))
    more = counts[counts > 1]

    def nll(lam: float) -> float:
        if lam <= 0:
            return math.inf
        ll = ones * (-lam + math.log1p(lam)) + float(np.sum(more * math.log(lam) - lam))
        return -ll

    res = optimize.minimize_scalar(nll, bounds=(1e-6, max(float(counts.max()), 1.0) * 2), method="bounded")
    lam = float(res.x)
    h = 1e-4 * max(lam, 1e-3)
    info = (nll(lam + h) - 2 * nll(lam) + nll(lam - h)) / h**2
    se = 1 / math.sqrt(info) if info > 0 else math.nan
    return lam, lam - Z95 * se, lam + Z95 * se


# ------------------------------------------------------------------------------ YAML


def _num(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}"


def _dist(fit: Fit, digits: int = 2) -> str:
    p = fit.params
    unit = "d" if fit.unit == "d" else ""
    if fit.unit == "money" and fit.family == "lognormal":
        return f"{{lognormal: {{median: {p['median']:.{digits}f}, sigma: {_num(p['sigma'])}}}}}"
    if fit.unit == "money":
        if fit.family == "exponential":
            return f"{{exponential: {{mean: {p['mean']:.{digits}f}}}}}"
        return f"{{gamma: {{mean: {p['mean']:.{digits}f}, cv: {_num(p['cv'])}}}}}"
    if fit.family == "exponential":
        return f"{{exponential: {{mean: {_num(p['mean'])}{unit}}}}}"
    if fit.family == "lognormal":
        return f"{{lognormal: {{median: {_num(p['median'])}{unit}, sigma: {_num(p['sigma'])}}}}}"
    return f"{{gamma: {{mean: {_num(p['mean'])}{unit}, cv: {_num(p['cv'])}}}}}"


def _why(fit: Fit) -> str:
    parts = [f"n={fit.n}"]
    if fit.censored:
        parts.append(f"{fit.censored_share:.1%} censored")
    if fit.truncated_at is not None:
        parts.append(f"answers seen within {_num(fit.truncated_at)}d only (fitted truncated there)")
    cis = ", ".join(f"{k} [{_num(lo)}, {_num(hi)}]" for k, (lo, hi) in fit.intervals.items())
    parts.append(f"95% CI {cis}")
    order = sorted(fit.aic, key=fit.aic.get)
    parts.append("AIC " + " < ".join(f"{f} {fit.aic[f]:.1f}" for f in order))
    return "; ".join(parts)


def _mix_text(mix: Mix, keys: Iterable[str]) -> tuple[str, str]:
    n = mix.n
    inner = ", ".join(f"{k}: {round(mix.share(k), 4)}" for k in keys)
    cis = ", ".join(
        f"{k} [{wilson(mix.counts.get(k, 0), n)[0]:.3f}, {wilson(mix.counts.get(k, 0), n)[1]:.3f}]"
        for k in keys
    )
    return inner, f"n={n}; 95% CI {cis}"


def _yaml(cal: Calibration) -> str:
    p, obs, fits = cal.policy, cal.obs, cal.fits
    rate, low, high = cal.rate
    lines = [
        f"# A population calibrated from {Path(cal.log).name} by milestone-sim calibrate ({obs.rows:,} rows,",
        f"# {len(obs.arrivals):,} contracts over {_num(obs.horizon)} days). Each value says what it",
        "# was fitted to: n observations, the share censored (cut short by a timer or by the end of",
        "# the log), the 95% intervals, and the families' AIC (the lowest is written).",
        f"scenario: Calibrated from {Path(cal.log).name}",
        f"policy: {p.policy}",
        "seed: 1",
        "replications: 10",
    ]
    if cal.start is not None:
        lines.append(f"start: {cal.start.isoformat()}")
    lines.append(f"until: {math.ceil(obs.horizon)}d")
    lines.append("population:")
    lines.append(
        f"  arrivals: {{rate: {_num(rate)}/d}}   # {len(obs.arrivals):,} offers in {_num(obs.horizon)}d; "
        f"95% CI [{_num(low)}, {_num(high)}]/d"
    )
    lam, lo, hi = cal.count_mean
    lines.append("  milestones:")
    emp = cal.empirical
    if "count" in emp:
        lines.append(
            f"    count: {{empirical: {{file: {cal.data_name}, column: count}}}}   # n={len(obs.counts):,} "
            f"contracts; no Poisson fits (chi-square p={cal.count_p:.2g})"
        )
    else:
        lines.append(
            f"    count: {{poisson: {{mean: {_num(lam)}}}, minimum: 1}}   # n={len(obs.counts):,} contracts; "
            f"mean 95% CI [{_num(lo)}, {_num(hi)}] (a 0 counts as 1); chi-square p={cal.count_p:.2g}"
        )
    if "amount" in emp:
        best = f"; the best family, {cal.amount.family}, has KS p={cal.amount_p:.2g}" if cal.amount else ""
        lines.append(
            f"    amount: {{empirical: {{file: {cal.data_name}, column: amount}}}}   "
            f"# n={len(obs.amounts):,}; no family fits{best}"
        )
    elif cal.amount is not None:
        lines.append(
            f"    amount: {_dist(cal.amount, p.digits)}   # {_why(cal.amount)}; KS p={cal.amount_p:.2g}"
        )
    lines.append("  client:")
    _delay(lines, fits, "client.fund_delay", "fund_delay", 4)
    if "client.withdraw.delay" in fits:
        n = len(obs.arrivals)
        k = len(obs.withdraw)
        lo_w, hi_w = wilson(k, n)
        f = fits["client.withdraw.delay"]
        lines.append(
            f"    withdraw: {{probability: {round(k / n, 4) if n else 0}, delay: {_dist(f)}}}   "
            f"# {k} of {n} offers "
            f"withdrawn, 95% CI [{lo_w:.3f}, {hi_w:.3f}] (a lower bound: a withdrawal after the answer "
            f"is not logged); delay {_why(f)}"
        )
    lines.append("    review:")
    _delay(lines, fits, "client.review.delay", "delay", 6)
    mix = cal.mixes["client.review.decision"]
    keys = [k for k in ("approve", "request_changes", "partial", "bonus", "refund") if k in mix.counts] or [
        "approve"
    ]
    inner, why = _mix_text(mix, keys)
    lines.append(f"      decision: {{{inner}}}   # {why}")
    for key, values in (("partial_fraction", obs.partial), ("bonus_fraction", obs.bonus)):
        if values:
            lo_v, hi_v = min(values), max(values)
            lines.append(
                f"      {key}: {{uniform: {{low: {_num(lo_v)}, high: {_num(max(hi_v, lo_v + 1e-6))}}}}}   "
                f"# n={len(values)}; the smallest and largest seen (the uniform's MLE)"
            )
    lines.append("  freelancer:")
    acc = cal.mixes["freelancer.accept"]
    if acc.n and "freelancer.accept.delay" in fits:
        lo_a, hi_a = wilson(acc.counts["accept"], acc.n)
        f = fits["freelancer.accept.delay"]
        lines.append(
            f"    accept: {{probability: {round(acc.share('accept'), 4)}, delay: {_dist(f)}}}   "
            f"# {acc.counts['accept']} of {acc.n} answers, 95% CI [{lo_a:.3f}, {hi_a:.3f}]; delay {_why(f)}"
        )
    _delay(lines, fits, "freelancer.work", "work", 4)
    _delay(lines, fits, "freelancer.rework", "rework", 4)
    rr = cal.mixes["freelancer.refund_response"]
    f = fits.get("freelancer.refund_response.delay")
    if rr.n and f is not None:
        answered = _answered_share(rr, f)
        approve = rr.counts.get("approve", 0)
        dispute = rr.counts.get("dispute", 0)
        total = max(approve + dispute, 1)
        mix_a = round(answered * approve / total, 4)
        mix_d = round(answered * dispute / total, 4)
        silent = round(max(0.0, 1 - mix_a - mix_d), 4)
        lines.append(
            f"    refund_response: {{approve: {mix_a}, dispute: {mix_d}, silent: {silent}, "
            f"delay: {_dist(f)}}}   # n={rr.n} requests: {approve} approved, {dispute} disputed, "
            f"{rr.counts.get('silent', 0)} timed out (silent, or an answer after the window: the silent "
            f"share is corrected for those); delay {_why(f)}"
        )
    lines.append("  platform:")
    agents = _most_open(obs.disputes_open)
    lines.append(
        f"    dispute_agents: {max(agents, 1)}   # the most disputes open at once: the handling delay below "
        "already includes any wait for an agent"
    )
    _delay(lines, fits, "platform.dispute_handling", "dispute_handling", 4)
    do = cal.mixes["platform.dispute_outcome"]
    if do.n:
        keys = [k for k in ("release", "refund", "split") if k in do.counts]
        inner, why = _mix_text(do, keys)
        lines.append(f"    dispute_outcome: {{{inner}}}   # {why}")
        if obs.split:
            lines.append(
                f"    split_fraction: {{uniform: {{low: {_num(min(obs.split))}, "
                f"high: {_num(max(max(obs.split), min(obs.split) + 1e-6))}}}}}"
                f"   # n={len(obs.split)}; the smallest and largest share released"
            )
    return "\n".join(lines) + "\n"


def _delay(lines: list[str], fits: dict[str, Fit], name: str, key: str, indent: int) -> None:
    fit = fits.get(name)
    if fit is not None:
        lines.append(f"{' ' * indent}{key}: {_dist(fit)}   # {_why(fit)}")


def _answered_share(mix: Mix, fit: Fit) -> float:
    """The share of freelancers who answer at all: the answers seen, over the chance that an
    answer comes within the window."""
    seen = mix.counts.get("approve", 0) + mix.counts.get("dispute", 0)
    if not mix.n:
        return 0.0
    within = float(fit.frozen().cdf(fit.truncated_at)) if fit.truncated_at is not None else 1.0
    return min(1.0, seen / mix.n / max(within, 1e-9))


def _most_open(changes: list[tuple[float, int]]) -> int:
    most = now = 0
    for _t, d in sorted(changes):
        now += d
        most = max(most, now)
    return most


def money_text(cents: int, digits: int) -> str:
    return format_money(cents, digits)
