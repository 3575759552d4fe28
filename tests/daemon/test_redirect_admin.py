"""Login redirection through the control plane: tgt's RedirectAddress/RedirectPort/
RedirectReason target parameters, shown, checked, dumped and planned; drain's checks."""

from __future__ import annotations

import json

import pytest

from pytgt.config.plan import Running, plan_update
from pytgt.config.spec import ConfigSpec
from pytgt.config.targets_conf import parse_text, render
from pytgt.daemon import redirect
from pytgt.daemon.errors import EXIT_EINVAL
from pytgt.daemon.policy import RegistryPolicy
from tests.daemon.conftest import IQN, Admin


def _moved(admin: Admin) -> tuple[str, bool] | None:
    target = admin.mgmt.registry.targets[1]
    return RegistryPolicy(admin.mgmt.registry, []).target_redirect(target)


def test_set_show_clear(configured: Admin) -> None:
    admin = configured
    assert _moved(admin) is None
    admin.ok(mode="target", op="update", tid=1, name="RedirectAddress", value="10.0.0.2")
    assert _moved(admin) == ("10.0.0.2:3260", False)
    admin.ok(mode="target", op="update", tid=1, params="redirectport=3261,RedirectReason=permanent")
    assert _moved(admin) == ("10.0.0.2:3261", True)
    shown = admin.ok(mode="target", op="show", tid=1)
    assert shown.endswith("RedirectAddress=10.0.0.2\nRedirectPort=3261\n"
                          "RedirectReason=Permanent\n")
    admin.ok(mode="target", op="update", tid=1, name="RedirectAddress", value="fd00::7")
    assert _moved(admin) == ("[fd00::7]:3261", True)
    admin.ok(mode="target", op="update", tid=1, name="RedirectAddress", value="")
    assert _moved(admin) is None
    assert "RedirectAddress" not in admin.ok(mode="target", op="show", tid=1)


@pytest.mark.parametrize(("name", "value"), [
    ("RedirectAddress", "not a host!"), ("RedirectPort", "0"), ("RedirectPort", "70000"),
    ("RedirectReason", "sometimes"), ("drain", "-1"), ("drain", "soon")])
def test_bad_values_refused(configured: Admin, name: str, value: str) -> None:
    rc, out = configured(mode="target", op="update", tid=1, name=name, value=value)
    assert rc == EXIT_EINVAL and "\n" not in out.strip()
    assert not any(k.startswith("Redirect")
                   for k in configured.mgmt.registry.targets[1].iscsi_params)


def test_drain_without_sessions_is_a_no_op(configured: Admin) -> None:
    configured.ok(mode="target", op="update", tid=1, name="drain", value="2")


def test_dumped_as_targets_conf_and_planned(configured: Admin, lun_file: str) -> None:
    admin = configured
    admin.ok(mode="target", op="update", tid=1,
             params="RedirectAddress=gw2.example.com,RedirectPort=3262")
    dump = json.loads(admin.ok(mode="system", op="dump"))
    config = ConfigSpec.from_dict(dump["config"])
    assert config.targets[0].iscsi_params == {"RedirectAddress": "gw2.example.com",
                                              "RedirectPort": "3262"}
    text = render(config)
    assert "\tRedirectAddress gw2.example.com\n" in text
    assert parse_text(text)[0].targets[0].iscsi_params == config.targets[0].iscsi_params
    # the file without the redirection: --update clears it, nothing else
    conf, _ = parse_text(f"<target {IQN}>\n  backing-store {lun_file}\n"
                         f"  initiator-address ALL\n</target>\n")
    running = Running(config, in_use=set(), param_defaults=dump["param_defaults"])
    assert plan_update(conf, running, "ALL").requests() == [
        {"mode": "target", "op": "update", "tid": 1,
         "params": {"RedirectAddress": "", "RedirectPort": ""}}]


def test_check_helpers() -> None:
    assert redirect.check("redirectaddress", " 192.0.2.1 ") == ("RedirectAddress", "192.0.2.1")
    assert redirect.check("RedirectAddress", "none") == ("RedirectAddress", "")
    assert redirect.check("RedirectReason", "TEMPORARY") == ("RedirectReason", "Temporary")
    assert redirect.check("MaxBurstLength", "1") is None
    assert redirect.drain_seconds("3600") == 3600 and redirect.drain_seconds("3601") is None
