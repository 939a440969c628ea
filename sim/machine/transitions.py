"""The transition table: every action of the state machine, declared once.

A row says who may take an action, in which contract and milestone states, which named guards
it must pass (each with its rule id and the policy keys it reads), which effect it has, which
arguments a script gives it, and which milestone state it leads to. ``apply`` (in ``contract``)
is lookup, guards, effect. The same table is the single source of:

- the action vocabulary (``ACTIONS`` by actor, ``AUTOMATIC``) that scripts are validated against,
- the scenario argument schema (``ARGS``, ``REQUIRED``),
- the README's action table (:func:`markdown_table`),
- the state diagram of a pack (:func:`state_graph`, drawn by ``sim.viz.diagram``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..policy.model import Policy
from ..policy.model import show_duration as _show
from ..policy.procedures import ByActed, Goto
from . import actions as fx
from . import guards as g
from .guards import Guard
from .vocabulary import REVIEWABLE

EDITABLE_CONTRACT = ("draft", "offered", "active")
ANSWERABLE = ("active", "ended")
PARTIES = ("client", "freelancer")


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table."""

    action: str
    actors: tuple[str, ...]
    effect: Callable
    doc: str
    contract: tuple[str, ...] | None = None  # contract states it needs (None: the effect decides)
    what: str = ""  # "cannot {what} while the contract is ..."
    milestone: str = "none"  # "required": look the named milestone up | "none"
    milestone_states: tuple[str, ...] | frozenset[str] | None = None
    milestone_what: str = ""  # "cannot {milestone_what} milestone m1 while it is ..."
    guards: tuple[Guard, ...] = ()
    args: tuple[str, ...] = ()  # what a script step may give
    required: tuple[str, ...] = ()  # ... and must give
    keys: tuple[str, ...] = ()  # policy keys of the accepted event
    to_state: str | None = None  # the milestone state it leads to (the diagram's edges)
    automatic: bool = False  # a timer or a consequence: never scripted
    enabled: Callable[[Policy], bool] | None = None  # whether a pack allows it at all (diagram)

    def all_keys(self) -> tuple[str, ...]:
        """The policy keys this row reads: its own and its guards'."""
        return tuple(dict.fromkeys([*self.keys, *(k for gd in self.guards for k in gd.keys)]))


T = Transition
MS = ("milestone",)

TABLE: tuple[Transition, ...] = (
    T("offer", ("client",), fx.offer, "send the contract's milestones to the freelancer", ("draft",),
      "send an offer", guards=(g.HAS_MILESTONES, g.OFFER_MINIMUM),
      keys=("milestones.minimum_amount", "offer.expires_after")),
    T("withdraw_offer", ("client",), fx.withdraw_offer, "take the offer back; escrow returned",
      ("offered",), "withdraw the offer", keys=("offer.refund_on_withdraw",), to_state="refunded"),
    T("fund", ("client",), fx.fund, "put a milestone's amount in escrow (contract credit first)",
      ("offered", "active"), "fund a milestone", "required", ("planned",), "fund",
      (g.NO_PROCEDURE, g.ONE_AT_A_TIME, g.FUNDING_ORDER, g.FUND_MINIMUM), MS, MS,
      ("milestones.funding", "milestones.funding_order", "milestones.minimum_amount"), "funded"),
    T("approve", ("client",), fx.approve, "release the escrow (less: partial, more: bonus)", ANSWERABLE,
      "approve", "required", REVIEWABLE, "approve", (g.PARTIAL, g.BONUS), ("milestone", "amount"), MS,
      ("release.partial", "release.bonus", "hold.after_release"), "released"),
    T("request_changes", ("client",), fx.request_changes, "stop the review clock until resubmission",
      ("active",), "request changes", "required", ("submitted",), "request changes on", (g.CHANGE_LIMIT,),
      MS, MS, ("review.max_change_requests",), "changes_requested"),
    T("extend_review", ("client",), fx.extend_review, "push the running review window's end",
      ("active",), "extend a review", "required", ("submitted",), "extend the review of", (g.MAY_EXTEND,),
      MS, MS, ("review.extensions",), enabled=lambda p: p.review.extensions is not None),
    T("lock_review", ("freelancer",), fx.lock_review, "fix the review's end: no more extensions",
      ("active",), "lock a review", "required", ("submitted",), "lock the review of", (g.MAY_LOCK,),
      MS, MS, ("review.extensions.lockable",),
      enabled=lambda p: p.review.extensions is not None and p.review.extensions.lockable),
    T("add_milestone", ("client",), fx.add_milestone, "add a planned milestone {id, amount, due?}",
      EDITABLE_CONTRACT, "add a milestone",
      guards=(g.NEW_ID, g.ADD_MINIMUM, g.POSITION_RANGE, g.POSITION_LOCK), args=("milestone", "position"),
      required=MS, keys=("milestones.minimum_amount", "milestones.active_locked")),
    T("edit_milestone", ("client",), fx.edit_milestone, "change an amount or due date", EDITABLE_CONTRACT,
      "edit a milestone", "required", guards=(g.EDITABLE, g.EDIT_LOCK, g.EDIT_MINIMUM),
      args=("milestone", "amount", "due"), required=MS,
      keys=("milestones.active_locked", "milestones.minimum_amount")),
    T("delete_milestone", ("client",), fx.delete_milestone, "delete a milestone (its escrow becomes credit)",
      EDITABLE_CONTRACT, "delete a milestone", "required", guards=(g.DELETABLE, g.DELETE_LOCK), args=MS,
      required=MS, keys=("milestones.active_locked",)),
    T("reorder_milestones", ("client",), fx.reorder_milestones, "put the milestones in a new order",
      EDITABLE_CONTRACT, "reorder milestones", guards=(g.ORDER_COMPLETE, g.ORDER_LOCK), args=("order",),
      required=("order",), keys=("milestones.active_locked",)),
    T("request_refund", ("client",), fx.request_refund,
      "open the procedure the pack opens with it (the refund request)", args=MS,
      keys=("refund.response_window", "refund.on_timeout"), to_state="refund_requested"),
    T("accept_offer", ("freelancer",), fx.accept_offer, "accept the offer: the contract is active",
      ("offered",), "accept the offer"),
    T("decline_offer", ("freelancer",), fx.decline_offer, "decline the offer; escrow returned", ("offered",),
      "decline the offer", keys=("offer.refund_on_decline",), to_state="refunded"),
    T("submit", ("freelancer",), fx.submit, "submit work: a review window opens", ("active",), "submit work",
      "required", ("funded", "changes_requested"), "submit", guards=(g.INVOICE,),
      args=("milestone", "amount"), required=MS, keys=("review.window", "review.on_timeout"),
      to_state="submitted"),
    T("approve_refund", ("freelancer",), fx.approve_refund, "answer accept to the refund request",
      ANSWERABLE, "answer a refund request", guards=(g.REFUND_PENDING_APPROVE,), to_state="refunded"),
    T("dispute", ("freelancer",), fx.dispute, "answer decline to the refund request (a dispute)", ANSWERABLE,
      "dispute", guards=(g.REFUND_PENDING_DISPUTE, g.MAY_DISPUTE), keys=("refund.dispute",),
      to_state="disputed", enabled=lambda p: p.refund is not None and p.refund.dispute),
    T("cancel_late", ("client",), fx.cancel_late, "cancel a very late milestone; its escrow comes back",
      ("active",), "cancel a late milestone", "required", ("funded",), "cancel", (g.LATE_ENOUGH,), MS, MS,
      ("late_cancel.after_due",), "refunded", enabled=lambda p: p.late_cancel is not None),
    T("cancel_milestone", ("freelancer",), fx.cancel_milestone, "give a funded milestone's escrow back",
      ("active", "ended"), "cancel a milestone", "required", ("funded", "submitted", "changes_requested"),
      "cancel", (g.FREELANCER_MAY_CANCEL,), MS, MS, ("freelancer_cancel",), "refunded",
      enabled=lambda p: p.freelancer_cancel),
    T("early_payout", ("freelancer",), fx.early_payout,
      "make a release's held money available now, for a fee", None, "", "required", ("released",),
      "pay out early", (g.EARLY_PAYOUT,), MS, MS,
      ("hold.early_payout",), enabled=lambda p: p.hold.early_payout is not None),
    T("reverse_release", ("platform",), fx.reverse_release,
      "take a release back to the client (the freelancer's money first from pending)", None, "",
      "required", ("released",), "reverse", (g.REVERSIBLE,), MS, MS, ("release.reversible",), "refunded",
      enabled=lambda p: p.release.reversible),
    T("request_extension", ("freelancer",), fx.request_extension, "ask the client to move the due date",
      ("active",), "ask for an extension", "required", ("funded", "changes_requested"),
      "ask for an extension of", (g.MAY_ASK_EXTENSION,), ("milestone", "due"), ("milestone", "due"),
      ("milestones.due_extensions",), enabled=lambda p: p.milestones.due_extensions is not None),
    T("accept_extension", ("client",), fx.answer_extension, "accept the extension: the due date moves",
      ("active",), "answer an extension", "required", ("funded", "changes_requested"),
      "answer an extension of",
      (g.EXTENSION_PENDING,), MS, MS, ("milestones.due_extensions",),
      enabled=lambda p: p.milestones.due_extensions is not None),
    T("decline_extension", ("client",), fx.answer_extension, "decline the extension: the due date stays",
      ("active",), "answer an extension", "required", ("funded", "changes_requested"),
      "answer an extension of",
      (g.EXTENSION_PENDING,), MS, MS, ("milestones.due_extensions",),
      enabled=lambda p: p.milestones.due_extensions is not None),
    T("end_contract", PARTIES, fx.end_contract, "end the contract; escrow stays until refunded or released",
      ("active",), "end the contract"),
    T("respond", PARTIES, fx.respond, "answer the open procedure's stage", args=("answer", "procedure"),
      required=("answer",)),
    T("pay_fee", PARTIES, fx.pay_fee, "pay the stage's fee to act in it", args=("procedure",)),
    T("open", PARTIES, fx.open_named, "open a procedure the pack lets this party open",
      args=("procedure", "milestone"), required=("procedure",)),
    T("propose_settlement", PARTIES, fx.settlement, "offer a split of the money in the procedure",
      args=("release", "refund"), required=("release", "refund")),
    T("accept_settlement", PARTIES, fx.settlement, "accept the other party's split", to_state="resolved"),
    T("resolve_dispute", ("platform",), fx.resolve_dispute,
      "decide a stage that waits for the platform (a split, or a proposal)",
      args=("milestone", "release", "refund"), required=("release", "refund"), to_state="resolved"),
    # automatic: timers and their consequences
    T("auto_approve", ("platform",), fx.auto_approve, "the review window ran out: release in full",
      keys=("review.window", "review.on_timeout", "hold.after_release"), to_state="released", automatic=True,
      enabled=lambda p: p.review.on_timeout == "approve"),
    T("auto_refund", ("platform",), fx.stage_timeout, "a stage's window ran out and silence refunds",
      automatic=True, to_state="refunded"),
    T("offer_expired", ("platform",), fx.offer_expired, "the offer was not accepted in time",
      keys=("offer.expires_after", "offer.refund_on_decline"), to_state="refunded", automatic=True,
      enabled=lambda p: p.offer.expires_after is not None),
    T("offer_refund", ("platform",), fx.withdraw_offer, "escrow returned with a withdrawn/declined offer",
      keys=("offer.refund_on_withdraw", "offer.refund_on_decline"), automatic=True),
    T("funds_available", ("platform",), fx.funds_available, "the hold on released money ended",
      keys=("hold.after_release",), automatic=True),
    T("auto_release", ("platform",), fx.stage_timeout, "a stage's window ran out and silence releases",
      automatic=True, to_state="released"),
    T("stage_timeout", ("platform",), fx.stage_timeout, "a stage's window ran out: its on_timeout outcome",
      automatic=True),
    T("dormancy_check", ("platform",), fx.dormancy_check, "a dormancy notice, or the dormancy procedure",
      keys=("dormancy.after", "dormancy.notices"), automatic=True),
    T("dormancy_notice", ("platform",), fx.dormancy_check, "escrow without activity: a notice",
      automatic=True),
    T("dormant", ("platform",), fx.dormancy_check, "escrow without activity: the dormancy procedure opens",
      automatic=True, to_state="dormant"),
    T("fee_returned", ("platform",), fx.funds_available, "a refundable fee goes back", automatic=True),
    T("all_paid", ("platform",), fx.stage_timeout, "every party paid the stage's fee: it moves on",
      automatic=True),
    T("stage_fee_taken", ("platform",), fx.funds_available, "a platform stage's fee comes out of the escrow",
      automatic=True),
    T("small_claim", ("platform",), fx.funds_available, "a small claim is split, not decided (fee waived)",
      automatic=True, to_state="resolved"),
    T("review_notice", ("platform",), fx.review_notice, "the review ends soon and the client has not acted",
      keys=("review.notices",), automatic=True, enabled=lambda p: bool(p.review.notices)),
    T("extension_withdrawn", ("platform",), fx.extension_withdrawn, "an unanswered extension request lapses",
      keys=("milestones.due_extensions",), automatic=True,
      enabled=lambda p: p.milestones.due_extensions is not None),
    T("refund_arrives", ("platform",), fx.refund_arrives, "a decided refund reaches the client",
      keys=("hold.after_refund",), automatic=True),
    T("fund_next", ("platform",), fx.fund_next, "charge the next milestone after a release",
      keys=("milestones.auto_fund_next",), automatic=True),
)  # fmt: skip

BY_NAME: dict[str, Transition] = {t.action: t for t in TABLE}
#: the actions each actor may script, in table order
ACTIONS: dict[str, tuple[str, ...]] = {
    actor: tuple(t.action for t in TABLE if actor in t.actors and not t.automatic)
    for actor in ("client", "freelancer", "platform")
}
#: actions no script may write: timers and their consequences
AUTOMATIC: tuple[str, ...] = tuple(t.action for t in TABLE if t.automatic)
#: the arguments a script step of each action may give, and those it must give
ARGS: dict[str, tuple[str, ...]] = {t.action: t.args for t in TABLE if t.args}
REQUIRED: dict[str, tuple[str, ...]] = {t.action: t.required for t in TABLE if t.required}
#: the events only the platform makes as consequences (no handler of their own is looked up)
CONSEQUENCES = frozenset(
    {
        "offer_refund",
        "dormancy_notice",
        "dormant",
        "fee_returned",
        "all_paid",
        "stage_fee_taken",
        "small_claim",
    }
)


def markdown_table() -> str:
    """The README's action table: actor, action, states, guards (rule ids), policy keys, effect."""

    def states(t: Transition) -> str:
        parts = []
        if t.contract:
            parts.append("contract " + "/".join(t.contract))
        if t.milestone_states:
            parts.append("milestone " + "/".join(sorted(t.milestone_states)))
        return "; ".join(parts) or "(see the procedure)"

    rows = [
        "| actor | action | arguments | needs | guards (rule) | policy keys | does |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in TABLE:
        actor = "automatic" if t.automatic else " / ".join(t.actors)
        args = ", ".join(a if a in t.required else f"{a}?" for a in t.args) or ""
        guards = ", ".join(f"{gd.name} ({gd.rule})" for gd in t.guards)
        keys = ", ".join(f"`{k}`" for k in t.all_keys())
        rows.append(f"| {actor} | `{t.action}` | {args} | {states(t)} | {guards} | {keys} | {t.doc} |")
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------------------ the state diagram

Node = tuple[str, str, str, str]  # id, label, group, kind
Edge = tuple[str, str, str, bool]  # src, dst, label, dashed


def state_graph(policy: Policy) -> tuple[list[Node], list[Edge]]:
    """A pack's milestone states and procedure stages as a graph: from the table and the pack.

    Nodes are milestone states (``planned`` starts; ``released``, ``refunded``, ``resolved`` end)
    and, grouped per procedure, its stages; edges are the table's transitions that the pack
    enables (labelled ``actor: action``), each procedure opening, and each stage outcome (answers
    solid, timeouts dashed).
    """
    ends = ("released", "refunded", "resolved")
    used: dict[str, None] = {}
    edges: list[Edge] = []

    def edge(src: str, dst: str, label: str, dashed: bool = False) -> None:
        used.setdefault(src)
        used.setdefault(dst)
        edges.append((src, dst, label, dashed))

    procs = policy.all_procedures
    for t in TABLE:
        if t.to_state is None or t.milestone_states is None:
            continue
        if t.enabled is not None and not t.enabled(policy):
            continue
        for src in sorted(t.milestone_states):
            edge(src, t.to_state, f"{'/'.join(t.actors)}: {t.action}", t.automatic)
    if policy.review.on_timeout == "approve":
        edge("submitted", "released", f"timeout {_show(policy.review.window)}: auto_approve", True)
    edge("funded", "refunded", "client: withdraw_offer / freelancer: decline_offer")

    def stage_id(name: str, index: int) -> str:
        return f"{name}__{procs[name].stages[index].name}"

    for (actor, action), name in sorted(policy.openers.items()):
        for src in sorted(REVIEWABLE):
            edge(src, stage_id(name, 0), f"{actor}: {action}")
    if policy.dormancy is not None:
        edge(
            "funded",
            stage_id(policy.dormancy.procedure, 0),
            f"{_show(policy.dormancy.after)} idle: dormant",
            True,
        )

    def target(name: str, index: int, outcome: object) -> list[tuple[str, str]]:
        if isinstance(outcome, Goto):
            pname = outcome.procedure or name
            i = procs[pname].stage(outcome.stage) if outcome.stage else 0
            return [(stage_id(pname, i), "")]
        simple = {
            "release": "released",
            "refund": "refunded",
            "apply_proposal": "resolved",
            "nothing": "funded",
        }
        if outcome in simple:
            return [(simple[str(outcome)], "")]
        if outcome == "next":
            return [(stage_id(name, index + 1), "")]
        if outcome == "platform":
            return [("resolved", " (the platform decides)")]
        return [("released", f" ({outcome}: freelancer)"), ("refunded", f" ({outcome}: client)")]

    for name, declared in procs.items():
        for i, stage in enumerate(declared.stages):
            here = stage_id(name, i)
            used.setdefault(here)
            if stage.party == "platform":
                if stage.binding:
                    edge(here, "resolved", "platform: resolve_dispute")
                elif i + 1 < len(declared.stages):
                    edge(here, stage_id(name, i + 1), "platform: proposal")
            for answer, outcome in stage.answers.items():
                for dst, note in target(name, i, outcome):
                    edge(here, dst, f"{stage.party}: {answer}{note}")
            timeouts: list[tuple[str, object]] = []
            if isinstance(stage.on_timeout, ByActed):
                timeouts = [(k, getattr(stage.on_timeout, k)) for k in ("none", "one", "both")]
            elif stage.on_timeout is not None:
                timeouts = [("", stage.on_timeout)]
            for who, outcome in timeouts:
                for dst, note in target(name, i, outcome):
                    paid = f" ({who} paid)" if who else ""
                    edge(here, dst, f"timeout{paid}{note}", True)

    nodes: list[Node] = []
    for nid in used:
        if "__" in nid:
            pname, sname = nid.split("__", 1)
            stage = procs[pname].stages[procs[pname].stage(sname)]
            window = (
                stage.window_for(stage.party) if stage.party not in ("both", "platform") else stage.window
            )
            if isinstance(window, dict):
                window = None
            extra = f", {_show(window)}" if window is not None else ""
            nodes.append((nid, f"{sname} ({stage.party}{extra})", f"procedure {pname}", "stage"))
        else:
            kind = "start" if nid == "planned" else "end" if nid in ends else "state"
            nodes.append((nid, nid, "", kind))
    return nodes, edges
