"""targets.conf: every directive, nested LUN blocks, includes, globals, each error with
file:line, the dump round trip, the planner and the atomic store."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pytest

from pytgt.config import store
from pytgt.config.plan import (
    WRITE_CACHE_OFF_PAGE,
    Running,
    diff_target,
    lun_requests,
    plan_delete,
    plan_execute,
    plan_state,
    plan_update,
    restore_requests,
)
from pytgt.config.spec import ConfigSpec
from pytgt.config.targets_conf import ConfigError, parse_file, parse_text, render

IQN = "iqn.2026-11.org.example:t1"
EXAMPLE = Path("/usr/share/doc/tgt/examples/targets.conf.example")


def parse(text: str) -> ConfigSpec:
    config, _warnings = parse_text(text, "t.conf")
    return config


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_text(text, "t.conf")
    return info.value.errors


def test_minimal_target_gets_lun_1_and_acl_all() -> None:
    config = parse(f"<target {IQN}>\n  backing-store /dev/sdb\n</target>\n")
    (t,) = config.targets
    assert t.name == IQN and t.tid is None
    assert [(lu.lun, lu.path, lu.bstype) for lu in t.luns] == [(1, "/dev/sdb", "rdwr")]
    assert t.initiator_addresses == ["ALL"]


def test_every_target_directive() -> None:
    config = parse(f"""
<target {IQN}>
    driver iscsi
    backing-store /a
    initiator-address 192.168.1.2
    initiator-address 10.0.0.0/8
    initiator-address [fe80::1]
    initiator-name iqn.1994-05.com.redhat:client
    incominguser user1 secretpass12
    incominguser user2 secretpass23
    outgoinguser userA secretpassA
    controller_tid 7
    MaxRecvDataSegmentLength 65536
    maxburstlength 131072
    FirstBurstLength 32768
    ImmediateData No
    InitialR2T Yes
    HeaderDigest CRC32C
    DataDigest None
    MaxOutstandingR2T 4
    MaxConnections 1
    nop_interval 5
</target>""")
    (t,) = config.targets
    assert t.tid == 7
    assert t.initiator_addresses == ["192.168.1.2", "10.0.0.0/8", "[fe80::1]"]
    assert t.initiator_names == ["iqn.1994-05.com.redhat:client"]
    assert t.incoming == [("user1", "secretpass12"), ("user2", "secretpass23")]
    assert t.outgoing == ("userA", "secretpassA")
    assert t.iscsi_params == {
        "MaxRecvDataSegmentLength": "65536", "MaxBurstLength": "131072",
        "FirstBurstLength": "32768", "ImmediateData": "No", "InitialR2T": "Yes",
        "HeaderDigest": "CRC32C", "DataDigest": "None", "MaxOutstandingR2T": "4",
        "MaxConnections": "1", "nop_interval": "5"}


def test_every_lun_directive_in_a_nested_block() -> None:
    config = parse(f"""
<target {IQN}>
    <backing-store /img/a>
        lun 3
        bs-type null
        bsopts "size=1G"
        bsoflags sync:direct
        block-size 4096
        device-type disk
        vendor_id VEND
        product_id PROD
        product_rev 0002
        scsi_id myid
        scsi_sn SN1
        removable yes
        readonly 1
        online 0
        sense_format 1
        thin_provisioning 1
        write-cache off
        allow-in-use yes
        params swp=1
    </backing-store>
</target>""")
    (lu,) = config.targets[0].luns
    assert (lu.lun, lu.path, lu.bstype, lu.bsopts, lu.bsoflags, lu.blocksize) == \
        (3, "/img/a", "null", "size=1G", "sync:direct", 4096)
    assert lu.device_type == "disk" and lu.allow_in_use and not lu.write_cache
    assert lu.params == {"vendor_id": "VEND", "product_id": "PROD", "product_rev": "0002",
                         "scsi_id": "myid", "scsi_sn": "SN1", "removable": "1",
                         "readonly": "1", "online": "0", "sense_format": "1",
                         "thin_provisioning": "1", "swp": "1"}


def test_mode_pages_set_write_cache_and_sense_format() -> None:
    config = parse(f"""<target {IQN}>
  backing-store /a
  mode_page {WRITE_CACHE_OFF_PAGE}
  mode_page 0x0a:0:10:0x04:0:0:0:0:0:0:0:0:0
</target>""")
    (lu,) = config.targets[0].luns
    assert not lu.write_cache and lu.params["sense_format"] == "1"


def test_luns_backing_before_direct_each_sorted_with_free_numbers() -> None:
    config = parse(f"""<target {IQN}>
    direct-store /dev/sdb
    backing-store /dev/sdz
    <backing-store /dev/sdc>
        lun 1
    </backing-store>
    backing-store /dev/sda
    direct-store /dev/sda
</target>""")
    got = [(lu.lun, lu.path, lu.direct) for lu in config.targets[0].luns]
    assert got == [(2, "/dev/sda", False), (1, "/dev/sdc", False), (3, "/dev/sdz", False),
                   (4, "/dev/sda", True), (5, "/dev/sdb", True)]


def test_target_level_settings_apply_to_every_lun_and_lun_blocks_override() -> None:
    config = parse(f"""<target {IQN}>
    <backing-store /a>
        vendor_id LOCAL
        write-cache on
    </backing-store>
    backing-store /b
    vendor_id TARGET
    write-cache off
</target>""")
    a, b = config.targets[0].luns
    assert a.params["vendor_id"] == "LOCAL" and a.write_cache
    assert b.params["vendor_id"] == "TARGET" and not b.write_cache


def test_target_level_lun_numbers_a_single_lun() -> None:
    config = parse(f"<target {IQN}>\n  backing-store /a\n  lun 10\n</target>\n")
    assert config.targets[0].luns[0].lun == 10


def test_global_defaults_apply_unless_overridden() -> None:
    config = parse(f"""
default-driver iscsi
vendor_id GLOBAL
write-cache off
initiator-address 10.1.1.1
incominguser gu gp
MaxConnections 2
<target {IQN}>
    backing-store /a
</target>
<target {IQN}2>
    backing-store /b
    vendor_id MINE
    initiator-address 10.2.2.2
    MaxConnections 3
</target>""")
    t1, t2 = config.targets
    assert t1.luns[0].params["vendor_id"] == "GLOBAL" and not t1.luns[0].write_cache
    assert t1.initiator_addresses == ["10.1.1.1"] and t1.incoming == [("gu", "gp")]
    assert t1.iscsi_params == {"MaxConnections": "2"}
    assert t2.luns[0].params["vendor_id"] == "MINE"
    assert t2.initiator_addresses == ["10.2.2.2"] and t2.iscsi_params["MaxConnections"] == "3"


def test_discovery_users_ignore_errors_control_port_isns_off() -> None:
    config = parse("""incomingdiscoveryuser du dp
outgoingdiscoveryuser ou op
ignore-errors yes
control-port 5
iSNSServerIP 192.168.111.222
iSNS Off
""")
    assert config.discovery_incoming == [("du", "dp")]
    assert config.discovery_outgoing == ("ou", "op")
    assert config.ignore_errors and config.control_port == 5


def test_comments_quotes_equals_continuations_and_escaped_hash() -> None:
    config = parse(f"""# comment
<target {IQN}>   # trailing comment
    backing-store = "/path/with space"   # LUN1
    scsi_sn serial\\#1
    vendor_id \\
        VEND
</target>""")
    (lu,) = config.targets[0].luns
    assert lu.path == "/path/with space"
    assert lu.params["scsi_sn"] == "serial#1" and lu.params["vendor_id"] == "VEND"


def test_duplicate_target_blocks_merge_like_tgt_admin() -> None:
    config = parse(f"<target {IQN}>\nbacking-store /a\n</target>\n"
                   f"<target {IQN}>\nbacking-store /b\n</target>\n")
    (t,) = config.targets
    assert [lu.path for lu in t.luns] == ["/a", "/b"]


def test_long_vendor_id_is_truncated_with_a_warning() -> None:
    config, warnings = parse_text(f"<target {IQN}>\nbacking-store /a\n"
                                  "vendor_id MyCompany Inc.\n</target>\n", "t.conf")
    assert config.targets[0].luns[0].params["vendor_id"] == "MyCompan"
    assert warnings == ["t.conf:3: vendor_id 'MyCompany Inc.' truncated to 8 characters "
                        "(as tgt does)"]


def test_includes_with_globs_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text(f"<target {IQN}b>\nbacking-store /b\n"
                                                "</target>\n")
    (tmp_path / "conf.d" / "a.conf").write_text(f"<target {IQN}a>\nbacking-store /a\n"
                                                "</target>\n")
    (tmp_path / "conf.d" / "skip.txt").write_text("garbage\n")
    main = tmp_path / "targets.conf"
    main.write_text("include conf.d/*.conf\ninclude /nonexistent/*.conf\n")
    config, _ = parse_file(str(main))
    assert [t.name for t in config.targets] == [f"{IQN}a", f"{IQN}b"]


def test_include_errors_name_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text("\n\nfoo bar\n")
    main = tmp_path / "targets.conf"
    main.write_text("include bad.conf\n")
    with pytest.raises(ConfigError) as info:
        parse_file(str(main))
    assert info.value.errors == [f"{tmp_path}/bad.conf:3: unknown directive: foo"]


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    main = tmp_path / "targets.conf"
    main.write_text("include targets.conf\n")
    with pytest.raises(ConfigError) as info:
        parse_file(str(main))
    assert info.value.errors == [f"{main}:1: include loop: {main}"]


@pytest.mark.parametrize(("text", "expected"), [
    ("foo bar\n", "t.conf:1: unknown directive: foo"),
    (f"<target {IQN}>\n  backing-store /a\n", "t.conf:1: <target> has no </target>"),
    ("</target>\n", "t.conf:1: </target> without <target>"),
    ("<lun 1>\n</lun>\n", "t.conf:1: unknown block <lun>"),
    ("<target x\n", "t.conf:1: malformed block tag: <target x"),
    ("<backing-store /a>\n</backing-store>\n",
     "t.conf:1: <backing-store> outside a <target> block"),
    ("backing-store /a\n", "t.conf:1: backing-store outside a <target> block"),
    (f"<target {IQN}>\n<target {IQN}x>\n</target>\n</target>\n",
     "t.conf:2: <target> inside <target>"),
    (f"<target {IQN}>\ninclude x\n</target>\n",
     "t.conf:2: include is only allowed outside <target> blocks"),
    ("controller_tid 3\n", "t.conf:1: controller_tid is only allowed in a <target> block"),
    (f"<target {IQN}>\n<backing-store /a>\ninitiator-address 1.2.3.4\n</backing-store>\n"
     "</target>\n", "t.conf:3: initiator-address is not allowed in a LUN block"),
    (f"<target {IQN}>\nbacking-store /a\nlbppbe 3\n</target>\n",
     "t.conf:3: lbppbe is not supported by pytgt"),
    (f"<target {IQN}>\nbacking-store /a\nlun 0\n</target>\n", "t.conf:3: bad lun: 0 (1..16383)"),
    (f"<target {IQN}>\nbacking-store /a\nblock-size 100\n</target>\n",
     "t.conf:3: bad block-size: 100 (one of 512 1024 2048 4096)"),
    (f"<target {IQN}>\nbacking-store /a\ndevice-type floppy\n</target>\n",
     "t.conf:3: unknown device-type: floppy"),
    (f"<target {IQN}>\nbacking-store /a\nbsoflags fast\n</target>\n",
     "t.conf:3: bad bsoflags: 'fast' (sync, direct or sync:direct)"),
    (f"<target {IQN}>\nbacking-store /a\nreadonly maybe\n</target>\n",
     "t.conf:3: bad value for readonly: 'maybe' (0 or 1)"),
    (f"<target {IQN}>\nbacking-store /a\nwrite-cache sometimes\n</target>\n",
     "t.conf:3: write-cache takes on or off"),
    (f"<target {IQN}>\nbacking-store /a\nallow-in-use perhaps\n</target>\n",
     "t.conf:3: allow-in-use takes yes or no"),
    (f"<target {IQN}>\nbacking-store /a\nparams colour=red\n</target>\n",
     "t.conf:3: unknown logical unit parameter: colour"),
    (f"<target {IQN}>\nbacking-store /a\nparams novalue\n</target>\n",
     "t.conf:3: params: 'novalue' is not key=value"),
    (f"<target {IQN}>\nbacking-store /a\nmode_page 0x1c:0:10:0\n</target>\n",
     "t.conf:3: mode_page 0x1c is not supported by pytgt (only 8, caching, and 0xa, control)"),
    (f"<target {IQN}>\nbacking-store /a\nmode_page x:y\n</target>\n",
     "t.conf:3: bad mode_page: 'x:y'"),
    (f"<target {IQN}>\nincominguser onlyuser\n</target>\n",
     "t.conf:2: incominguser takes a user name and a password"),
    (f"<target {IQN}>\noutgoinguser a b\noutgoinguser c d\n</target>\n",
     "t.conf:3: outgoinguser given twice (first at t.conf:2)"),
    (f"<target {IQN}>\ninitiator-address 300.1.1.1\n</target>\n",
     "t.conf:2: bad initiator-address: '300.1.1.1'"),
    (f"<target {IQN}>\ncontroller_tid zero\n</target>\n", "t.conf:2: bad controller_tid: zero"),
    (f"<target {IQN}>\ncontroller_tid 4\n</target>\n<target {IQN}2>\ncontroller_tid 4\n"
     "</target>\n", "t.conf:4: controller_tid 4 is already used (at t.conf:1)"),
    (f"<target {IQN}>\n<backing-store /a>\nlun 2\n</backing-store>\n<backing-store /b>\n"
     "lun 2\n</backing-store>\n</target>\n", "t.conf:5: lun 2 is already used (at t.conf:2)"),
    (f"<target {IQN}>\nbacking-store /a\nbacking-store /b\nlun 4\n</target>\n",
     "t.conf:3: lun 4 is already used (at t.conf:2)"),
    (f"<target {IQN}>\nbacking-store /a\nvendor_id A\nvendor_id B\n</target>\n",
     "t.conf:4: vendor_id given twice (first at t.conf:3)"),
    (f"<target {IQN}>\nMaxBurstLength\n</target>\n", "t.conf:2: maxburstlength needs a value"),
    ("default-driver iser\n", "t.conf:1: driver iser is not supported (only iscsi)"),
    ("iSNS On\n", "t.conf:1: iSNS is not supported by pytgt"),
    ("control-port x\n", "t.conf:1: control-port takes a number 0..65535"),
    ("ignore-errors maybe\n", "t.conf:1: ignore-errors takes yes or no"),
    ("<target bad name>\n</target>\n", "t.conf:1: bad target name: 'bad name'"),
    (f"<target {IQN}>\ninitiator-address NONE\ninitiator-address 1.2.3.4\n</target>\n",
     "t.conf:2: initiator-address NONE cannot be combined with addresses"),
])
def test_each_error_with_file_and_line(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_every_error_is_reported_not_just_the_first() -> None:
    assert errors("foo 1\nbar 2\n") == ["t.conf:1: unknown directive: foo",
                                        "t.conf:2: unknown directive: bar"]


@pytest.mark.skipif(not EXAMPLE.exists() and not EXAMPLE.with_suffix(".example.gz").exists(),
                    reason="tgt's example file is not installed")
def test_tgt_example_file_only_error_is_its_duplicate_controller_tid(tmp_path: Path) -> None:
    raw = EXAMPLE.read_bytes() if EXAMPLE.exists() else \
        gzip.decompress(EXAMPLE.with_suffix(".example.gz").read_bytes())
    path = tmp_path / "targets.conf.example"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        parse_file(str(path))
    # target5 and target9 both say controller_tid 10 (tgtd refuses the second too)
    assert len(info.value.errors) == 1
    assert "controller_tid 10 is already used" in info.value.errors[0]
    fixed = raw.decode().replace("controller_tid 10\n</target>\n\n\n\n\n",
                                 "controller_tid 11\n</target>\n\n\n\n\n")
    config, warnings = parse_text(fixed, "example")
    names = [t.name.rsplit(".", 1)[1] for t in config.targets]
    assert names == [f"target{i}" for i in range(1, 10)]
    t4 = config.targets[3]
    assert [(lu.lun, lu.path) for lu in t4.luns][:2] == [(1, "/dev/sdc"), (2, "/dev/sde")]
    t5 = config.targets[4]
    assert t5.tid == 10 and t5.outgoing == ("userA", "secretpassA")
    assert {lu.path: lu.lun for lu in t5.luns}["/dev/sdd1"] == 15
    assert warnings  # "MyCompany Inc." is longer than 8 characters


# -- render / dump round trip ------------------------------------------------------------------
ROUND_TRIP = f"""
incomingdiscoveryuser du dp
outgoingdiscoveryuser ou op
<target {IQN}>
    controller_tid 3
    <backing-store "/a b/\\#c">
        lun 2
        bs-type null
        bsopts size=1G
        bsoflags direct
        block-size 4096
        write-cache off
        vendor_id " V "
        scsi_sn SN
    </backing-store>
    direct-store /dev/sdx
    MaxBurstLength 131072
    initiator-name iqn.x:y
    initiator-address NONE
    incominguser u p
    outgoinguser o q
</target>
<target {IQN}2>
    backing-store /z
</target>
"""


def test_render_parses_back_to_the_same_configuration() -> None:
    config = parse(ROUND_TRIP)
    text = render(config, header="written by a test")
    again = parse(text)
    assert again == _without_where(config, again)
    assert restore_requests(_tids(again)) == restore_requests(_tids(config))


def _without_where(config: ConfigSpec, like: ConfigSpec) -> ConfigSpec:
    for t, t2 in zip(config.targets, like.targets, strict=True):
        t.where = t2.where
        for lu, lu2 in zip(t.luns, t2.luns, strict=True):
            lu.where = lu2.where
    return config


def _tids(config: ConfigSpec) -> ConfigSpec:
    for i, t in enumerate(config.targets, 1):
        t.tid = t.tid or 100 + i
    return config


def test_json_form_round_trips() -> None:
    config = _tids(parse(ROUND_TRIP))
    again = ConfigSpec.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restore_requests(again) == restore_requests(config)


# -- planning ------------------------------------------------------------------------------
def _running(text: str, in_use: set[int] | None = None) -> Running:
    return Running(_tids(parse(text)), in_use or set(), {"MaxBurstLength": "262144"})


def test_execute_requests_in_tgt_admin_order(tmp_path: Path) -> None:
    img = tmp_path / "a.img"
    img.write_bytes(b"")
    config = parse(f"""<target {IQN}>
    backing-store {img}
    MaxBurstLength 65536
    incominguser u p
    initiator-address 10.0.0.1
    outgoinguser o q
    write-cache off
</target>""")
    reqs = plan_execute(config, Running()).requests()
    assert reqs == [
        {"mode": "target", "op": "new", "tid": 1, "targetname": IQN},
        {"mode": "target", "op": "update", "tid": 1, "params": {"MaxBurstLength": "65536"}},
        {"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1, "backing_store": str(img)},
        {"mode": "logicalunit", "op": "update", "tid": 1, "lun": 1,
         "params": {"mode_page": WRITE_CACHE_OFF_PAGE}},
        {"mode": "account", "op": "new", "user": "u", "password": "p"},
        {"mode": "account", "op": "bind", "user": "u", "tid": 1},
        {"mode": "target", "op": "bind", "tid": 1, "initiator_address": "10.0.0.1"},
        {"mode": "account", "op": "new", "user": "o", "password": "q"},
        {"mode": "account", "op": "bind", "user": "o", "tid": 1, "outgoing": True},
    ]


def test_execute_assigns_tids_after_the_largest_and_skips_existing_targets() -> None:
    running = _running(f"<target {IQN}>\ncontroller_tid 5\n</target>\n"
                       f"<target {IQN}old>\ncontroller_tid 2\n</target>\n")
    config = parse(f"<target {IQN}>\n</target>\n<target {IQN}a>\n</target>\n"
                   f"<target {IQN}b>\n</target>\n")
    plan = plan_execute(config, running)
    news = [(r["tid"], r["targetname"]) for r in plan.requests() if r["op"] == "new"]
    assert news == [(6, f"{IQN}a"), (7, f"{IQN}b")]
    assert ["# Target iqn.2026-11.org.example:t1 already exists!"] in \
        [s.comments for s in plan.steps]
    # the running target that is not in the file is removed (tgt-admin -e does)
    assert {"mode": "target", "op": "delete", "tid": 2} in plan.requests()


def test_execute_keeps_targets_in_use_unless_forced() -> None:
    running = _running(f"<target {IQN}old>\ncontroller_tid 2\n</target>\n", in_use={2})
    plan = plan_execute(ConfigSpec(), running)
    assert plan.requests() == [] and "in use" in plan.warnings[0]
    plan = plan_execute(ConfigSpec(), running, force=True)
    assert plan.requests() == [{"mode": "target", "op": "delete", "tid": 2, "force": True}]


def test_missing_file_and_file_in_use_are_skipped_like_tgt_admin(tmp_path: Path) -> None:
    img = tmp_path / "a.img"
    img.write_bytes(b"")
    running = _running(f"<target {IQN}>\ncontroller_tid 1\n<backing-store {img}>\nlun 1\n"
                       "</backing-store>\n</target>\n")
    config = parse(f"<target {IQN}>\nbacking-store {img}\n</target>\n"
                   f"<target {IQN}x>\nbacking-store {img}\nbacking-store /missing/file\n"
                   "</target>\n")
    plan = plan_execute(config, running)
    assert not [r for r in plan.requests() if r["mode"] == "logicalunit"]
    assert any("does not exist" in w for w in plan.warnings)
    assert any("in use by" in w for w in plan.warnings)
    plan = plan_execute(config, running, force=True)
    assert [r["backing_store"] for r in plan.requests() if r["mode"] == "logicalunit"] == \
        [str(img)]


def test_update_is_a_diff() -> None:
    have = _running(f"""<target {IQN}>
controller_tid 4
<backing-store /a>
lun 1
bs-type null
vendor_id OLD
</backing-store>
<backing-store /b>
lun 2
bs-type null
</backing-store>
MaxBurstLength 65536
initiator-address 10.0.0.1
incominguser u p
</target>""")
    want = parse(f"""<target {IQN}>
<backing-store /a>
lun 1
bs-type null
product_id NEW
write-cache off
</backing-store>
<backing-store /c>
lun 2
bs-type null
</backing-store>
initiator-address 10.0.0.2
incominguser v w
</target>""")
    plan = plan_update(want, have, "ALL")
    assert plan.requests() == [
        {"mode": "target", "op": "update", "tid": 4, "params": {"MaxBurstLength": "262144"}},
        {"mode": "logicalunit", "op": "delete", "tid": 4, "lun": 2},
        {"mode": "logicalunit", "op": "update", "tid": 4, "lun": 1,
         "params": {"product_id": "NEW", "vendor_id": "IET"}},
        {"mode": "logicalunit", "op": "update", "tid": 4, "lun": 1,
         "params": {"mode_page": WRITE_CACHE_OFF_PAGE}},
        {"mode": "logicalunit", "op": "new", "tid": 4, "lun": 2, "backing_store": "/c",
         "bstype": "null"},
        {"mode": "target", "op": "unbind", "tid": 4, "initiator_address": "10.0.0.1"},
        {"mode": "target", "op": "bind", "tid": 4, "initiator_address": "10.0.0.2"},
        {"mode": "account", "op": "unbind", "tid": 4, "user": "u"},
        {"mode": "account", "op": "new", "user": "v", "password": "w"},
        {"mode": "account", "op": "bind", "user": "v", "tid": 4},
    ]
    reqs = plan.requests()
    assert {"mode": "logicalunit", "op": "delete", "tid": 4, "lun": 2} in reqs
    assert not any(r["op"] == "delete" and r["mode"] == "target" for r in reqs)


def test_update_of_an_unchanged_target_sends_nothing() -> None:
    text = f"<target {IQN}>\ncontroller_tid 4\n<backing-store /a>\nlun 1\nbs-type null\n" \
           "</backing-store>\n</target>\n"
    plan = plan_update(parse(text), _running(text), "tid=4")
    assert plan.requests() == []
    assert plan.steps[0].comments == [f"# Target {IQN} is up to date"]


def test_update_refuses_a_target_in_use_unless_forced() -> None:
    have = _running(f"<target {IQN}>\ncontroller_tid 4\n</target>\n", in_use={4})
    want = parse(f"<target {IQN}>\ninitiator-address 10.0.0.9\n</target>\n")
    assert plan_update(want, have, IQN).requests() == []
    assert plan_update(want, have, IQN, force=True).requests()


def test_delete_and_state_selectors() -> None:
    running = _running(f"<target {IQN}>\ncontroller_tid 4\n</target>\n"
                       f"<target {IQN}2>\ncontroller_tid 9\n</target>\n")
    assert plan_delete(running, "tid=9").requests() == \
        [{"mode": "target", "op": "delete", "tid": 9}]
    assert [r["tid"] for r in plan_delete(running, "ALL").requests()] == [4, 9]
    assert plan_delete(running, f"{IQN}2").requests()[0]["tid"] == 9
    assert plan_delete(running, "tid=5").steps[0].comments == \
        ["# Target with tid 5 does not exist!"]
    assert plan_delete(running, "iqn.x:none").steps[0].comments == \
        ["# Target with name iqn.x:none does not exist!"]
    assert plan_state(running, "ALL", "offline").requests() == [
        {"mode": "target", "op": "update", "tid": t, "name": "state", "value": "offline"}
        for t in (4, 9)]


def test_diff_of_identical_targets_is_empty() -> None:
    t = _tids(parse(ROUND_TRIP)).targets[0]
    assert diff_target(t, t, 3, {}, {}, []) == []


# -- store -------------------------------------------------------------------------------------
def test_save_is_atomic_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "config.json"
    config = _tids(parse(ROUND_TRIP))
    store.save(str(path), config)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp file left
    loaded = store.load(str(path))
    assert loaded is not None and restore_requests(loaded) == restore_requests(config)


def test_load_missing_is_none_and_malformed_is_value_error(tmp_path: Path) -> None:
    assert store.load(str(tmp_path / "none.json")) is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="malformed"):
        store.load(str(bad))
    bad.write_text('{"version": 99}')
    with pytest.raises(ValueError, match="version"):
        store.load(str(bad))


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    store.save(str(path), ConfigSpec())
    before = path.read_bytes()

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        store.save(str(path), _tids(parse(ROUND_TRIP)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_automatic_tids_skip_controller_tids_asked_for_later_in_the_file() -> None:
    config = parse(f"<target {IQN}a>\ncontroller_tid 1\n</target>\n<target {IQN}b>\n</target>\n"
                   f"<target {IQN}c>\ncontroller_tid 2\n</target>\n")
    news = [(r["tid"], r["targetname"]) for r in plan_execute(config, Running()).requests()
            if r["op"] == "new"]
    assert news == [(1, f"{IQN}a"), (3, f"{IQN}b"), (2, f"{IQN}c")]


def test_warnings_are_reported_once() -> None:
    _config, warnings = parse_text(f"<target {IQN}>\nbacking-store /a\nbacking-store /b\n"
                                   "vendor_id LONGVENDORNAME\n</target>\n", "t.conf")
    assert len(warnings) == 1


def test_update_keeps_the_running_tid_and_says_so() -> None:
    have = _running(f"<target {IQN}>\ncontroller_tid 4\n</target>\n")
    want = parse(f"<target {IQN}>\ncontroller_tid 8\ninitiator-address 10.0.0.1\n</target>\n")
    plan = plan_update(want, have, "ALL")
    assert {r["tid"] for r in plan.requests()} == {4}
    assert plan.warnings == ["t.conf:1: controller_tid 8 differs from the running tid 4; "
                             "--update keeps tid 4"]


@pytest.mark.parametrize("value", ["ab\\", "=x", '"q', "a b", " s", "x#y", "a\\#", ""])
def test_render_quotes_values_that_would_not_parse_back(value: str) -> None:
    config = parse(f"<target {IQN}>\n  backing-store /p\n</target>\n")
    config.targets[0].luns[0].params["scsi_sn"] = value
    again = parse(render(config))
    assert again.targets[0].luns[0].params["scsi_sn"] == value


def test_render_escapes_hash_in_chap_secrets() -> None:
    config = parse(f"incomingdiscoveryuser d p\\#1\n<target {IQN}>\n"
                   "  incominguser u se\\#cret\n  outgoinguser o \\#x\n</target>\n")
    assert config.targets[0].incoming == [("u", "se#cret")]
    again = parse(render(config))
    assert again.targets[0].incoming == [("u", "se#cret")]
    assert again.targets[0].outgoing == ("o", "#x")
    assert again.discovery_incoming == [("d", "p#1")]


# -- a changer (tgt's VTL examples) ----------------------------------------------------------
VTL = Path("/usr/share/doc/tgt/examples")


@pytest.mark.skipif(not VTL.is_dir(), reason="tgt's examples are not installed")
@pytest.mark.parametrize("name", ["targets.conf.vtl.L700", "targets.conf.vtl.MSL2024"])
def test_tgt_vtl_examples_parse_with_their_elements(name: str) -> None:
    config, warnings = parse_file(str(VTL / name))
    assert warnings == []
    (target,) = config.targets
    changer = next(lu for lu in target.luns if lu.device_type == "changer")
    assert changer.lun == 4 and changer.params["product_rev"]
    assert changer.elements[0] == {"element_type": "1", "start_address": "1", "quantity": "1",
                                   "media_home": "/root/tapes"}
    assert all("element_type" in e for e in changer.elements)
    assert "mode_page" not in changer.params  # the SMC pages are built, not configured
    updates = [r for r in lun_requests(1, changer) if r["op"] == "update"]
    assert [r["params"] for r in updates] == changer.elements


def test_changer_elements_render_and_round_trip() -> None:
    text = (f"<target {IQN}>\n<backing-store /vtl/smc>\nlun 2\ndevice-type changer\n"
            "mode_page \"0:0:0\"\nmode_page \"0x1d:0:0x12:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0\"\n"
            "params element_type=2,start_address=1000,quantity=4,media_home=/vtl\n"
            "params element_type=2,address=1000,barcode=B1,volume_tag=\"a tape\"\n"
            "</backing-store>\n</target>\n")
    config = parse(text)
    lu = config.targets[0].luns[0]
    assert lu.elements == [{"element_type": "2", "start_address": "1000", "quantity": "4",
                            "media_home": "/vtl"},
                           {"element_type": "2", "address": "1000", "barcode": "B1",
                            "volume_tag": "a tape"}]
    again = parse(render(config))
    assert again.targets[0].luns[0].elements == lu.elements
    assert ConfigSpec.from_dict(json.loads(json.dumps(config.to_dict()))).to_dict() \
        == config.to_dict()
    # a disk knows no element keys nor the changer's pages
    assert errors(f"<target {IQN}>\nbacking-store /a\nparams element_type=2\n</target>\n") \
        == ["t.conf:3: unknown logical unit parameter: element_type"]


def test_moved_cartridges_are_state_not_a_changer_to_recreate() -> None:
    head = (f"<target {IQN}>\n<backing-store /vtl/smc>\nlun 2\ndevice-type changer\n"
            "params element_type=2,start_address=1000,quantity=4,media_home=/vtl\n")
    tail = "</backing-store>\n</target>\n"
    want = parse(head + "params element_type=2,address=1000,barcode=B1\n" + tail).targets[0]
    have = parse(head + "params element_type=2,address=1003,barcode=B1\n" + tail).targets[0]
    assert diff_target(have, want, 1, {}, {}, []) == []
    bigger = parse(head.replace("quantity=4", "quantity=8") + tail).targets[0]
    assert [r["op"] for r in diff_target(have, bigger, 1, {}, {}, [])][:2] == ["delete", "new"]


def test_a_changer_is_created_after_its_drives() -> None:
    text = (f"<target {IQN}>\n<backing-store /vtl/smc>\nlun 1\ndevice-type changer\n"
            "params element_type=4,start_address=1,quantity=1\n"
            "params element_type=4,address=1,tid=1,lun=2\n</backing-store>\n"
            "<backing-store /vtl/notape>\nlun 2\ndevice-type tape\n</backing-store>\n"
            "</target>\n")
    config = parse(text)
    config.targets[0].tid = 1
    news = [r["lun"] for r in restore_requests(config) if r.get("op") == "new"
            and r.get("mode") == "logicalunit"]
    assert news == [2, 1]


def test_a_tape_lu_with_tgts_store_name_and_its_own_defaults() -> None:
    """``bs-type ssc`` is tgt's name for a tape's file (rdwr); a tape's own product_id and
    removable are its defaults, so nothing is sent or dumped for them."""
    text = (f"<target {IQN}>\n<backing-store /vtl/A1>\nlun 1\ndevice-type tape\n"
            "bs-type ssc\nproduct_id VIRTUAL-TAPE\nremovable 1\n</backing-store>\n</target>\n")
    config = parse(text)
    config.targets[0].tid = 1
    lu = config.targets[0].luns[0]
    assert lu.bstype == "rdwr"
    new = [r for r in restore_requests(config) if r.get("mode") == "logicalunit"]
    assert new == [{"mode": "logicalunit", "op": "new", "tid": 1, "lun": 1,
                    "backing_store": "/vtl/A1", "device_type": "tape"}]
