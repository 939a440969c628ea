"""The transition table is the single source of the vocabulary, the scripts' schema, the README's
action table and each pack's state diagram."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sim
from sim.app.cli import main
from sim.inputs import scenario as scenario_reader
from sim.machine import transitions
from sim.machine.contract import apply
from sim.machine.records import Contract, Milestone
from sim.machine.vocabulary import Action
from sim.policy import RULE_IDS, load_policy
from sim.viz.policy_diagram import pack_mermaid

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_action_table_is_the_generated_one():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- actions:start -->\n(.*?)<!-- actions:end -->", text, re.S)
    assert match, "the README's action table markers are missing"
    assert match.group(1) == transitions.markdown_table(), (
        "README's action table is stale: regenerate it with `milestone-sim policies --actions`"
    )


def test_the_scenario_reader_takes_its_vocabulary_and_arguments_from_the_table():
    assert scenario_reader.ACTIONS is transitions.ACTIONS
    assert scenario_reader._ARGS is transitions.ARGS
    for t in transitions.TABLE:
        assert set(t.required) <= set(t.args), t.action
    assert "submit" in transitions.ACTIONS["freelancer"] and "submit" not in transitions.ACTIONS["client"]
    assert set(transitions.AUTOMATIC) >= {"auto_approve", "auto_refund", "funds_available"}


def _is_policy_key(key: str) -> bool:
    """Does the dotted key name a field of the policy model (``review.window``)?"""
    from sim.policy.model import Policy

    model: object = Policy
    for part in key.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        inner = [a for a in getattr(annotation, "__args__", ()) if hasattr(a, "model_fields")]
        model = inner[0] if inner else annotation
    return True


def test_every_guard_names_a_rule_id_and_policy_keys_that_exist():
    upwork = load_policy("upwork_2026")
    for t in transitions.TABLE:
        for guard in t.guards:
            assert guard.rule in RULE_IDS, (t.action, guard.name)
        for key in t.all_keys():
            assert _is_policy_key(key), (t.action, key)
            if t.enabled is None or t.enabled(upwork):  # a key the pack uses says where it was written
                assert upwork.source(key) != "default", (t.action, key)
    assert not _is_policy_key("review.windw")


def test_the_minimum_amount_check_is_one_guard_function_everywhere():
    """offer, fund, add and edit share the effect library's check (one message per use)."""
    from sim.machine import guards

    minimum = [gd for t in transitions.TABLE for gd in t.guards if gd.rule == "minimum_amount"]
    assert {gd.name for gd in minimum} == {"offer_minimum", "fund_minimum", "add_minimum", "edit_minimum"}
    source = Path(guards.__file__).read_text(encoding="utf-8")
    assert source.count('Rejected("minimum_amount"') == 0  # all through effects.check_minimum


def test_an_action_by_the_wrong_actor_is_rejected_and_changes_nothing():
    policy = load_policy("upwork")
    c = Contract("c1", "acme", "ana", [Milestone("m1", 50000)])
    out = apply(policy, c, Action("freelancer", "offer"), 0.0)
    assert (out.accepted, out.rule) == (False, "invalid_state")
    assert out.message == "offer is not a freelancer action"
    assert c.state == "draft"


def _edges(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if "-->" in line}


def test_the_diagram_follows_the_pack():
    upwork = pack_mermaid(load_policy("upwork"))
    full = pack_mermaid(load_policy("upwork_2026"))
    assert "stateDiagram-v2" in upwork
    # the article: the freelancer's answer to a refund request, the platform decides a dispute
    assert "escrow_refund__respond --> refunded : freelancer - accept" in _edges(upwork)
    assert "dispute__decide --> resolved : platform - resolve_dispute" in _edges(upwork)
    assert "dispute__client_response" not in upwork
    # upwork_2026: the client answers first; silence releases; then mediation and arbitration
    assert "dispute__client_response --> released : timeout" in _edges(full)
    assert "arbitration__offer --> refunded : timeout (none paid)" in _edges(full)
    assert "dormant__client_action" in full
    # review.on_timeout: nothing has no auto-approval edge
    quiet = pack_mermaid(load_policy("upwork", [("review.on_timeout", "nothing", None, ())]))
    assert not [e for e in _edges(quiet) if "auto_approve" in e]
    assert [e for e in _edges(upwork) if "auto_approve" in e]


def test_policies_diagram_prints_mermaid_and_draws_a_png(tmp_path, capsys):
    assert main(["policies", "--diagram", "upwork_2026"]) == 0
    out = capsys.readouterr().out
    assert out == pack_mermaid(load_policy("upwork_2026"))
    target = tmp_path / "d.png"
    assert main(["policies", "--diagram", "upwork", "--png", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]  # no temporary file left


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--diagram", "nopack"], "unknown policy pack 'nopack'"),
        (["--png", "x.png"], "--png needs --diagram PACK"),
        (["--diagram", "upwork", "--png", "x.svg"], "--png needs a .png file name"),
        (["--diagram", "upwork", "--png", "/no/such/folder/x.png"], "no folder"),
    ],
)
def test_policies_diagram_bad_options_exit_2(args, words, capsys):
    assert main(["policies", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_the_report_embeds_the_pack_diagram(tmp_path):
    result = sim.run(ROOT / "scenarios" / "upwork" / "refund_disputed_and_resolved.yaml")
    result.write(tmp_path / "out", report=True)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert '<figure id="policy-diagram"><svg' in html
    assert "escrow_refund__respond --&gt; refunded" in html  # the Mermaid text, escaped
    svg = (tmp_path / "out" / "policy_diagram.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and svg in html
    assert "(freelancer, 7d)" in svg  # labels stay text (searchable, sharp at any zoom)
    again = tmp_path / "again"
    result.write(again, report=True)
    assert (again / "policy_diagram.svg").read_text(encoding="utf-8") == svg  # deterministic
