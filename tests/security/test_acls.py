"""The ACL lines the README shows are the ones `loyalty topics acls` prints from
streams/tools/acls.py (the same grants the security tests apply to a real broker)."""

from __future__ import annotations

import subprocess
import sys

from streams.broker import TopicNames
from streams.settings import REPO_ROOT
from streams.tools.acls import acl_bindings, grants, kafka_acls_lines


def test_the_readme_lists_what_the_command_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "streams.cli", "topics", "acls"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT)},  # the defaults, no LOYALTY_*
    ).stdout
    readme = (REPO_ROOT / "README.md").read_text()
    assert printed.strip() in readme


def test_least_privilege_shape() -> None:
    needs = grants(TopicNames("shop"), "shop-worker")
    publisher = acl_bindings("User:pos", needs["publisher"])
    assert {(b.name, str(b.operation)) for b in publisher} == {
        ("shop.purchases.v1", "AclOperation.WRITE"),
        ("shop.feedback.v1", "AclOperation.WRITE"),
    }
    reader_operations = {str(b.operation) for b in acl_bindings("User:audit", needs["reader"])}
    # a reader writes nothing
    assert reader_operations <= {"AclOperation.READ", "AclOperation.DESCRIBE"}
    worker_lines = kafka_acls_lines("User:w", needs["worker"])
    # the worker never writes to the inputs nor reads the outputs
    assert not any("Write" in line and "purchases" in line for line in worker_lines)
    assert not any("Read" in line and "tier-changes" in line for line in worker_lines)
