"""The README's first hour per role, run word for word against a real `mebuku demo`.

The test starts a demo on free ports in a fresh state folder, reads every fenced block
marked ``bash walkthrough-<role>`` from README.md, runs it with bash (the demo's URL and
keys in the variables the README tells the reader to set) and checks that each command's
output holds what its ``# answers:`` line says. The demo is stopped and its servers
killed also when the test fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.embedded import server_dir
from tests.conftest import REPO_ROOT
from tests.core.test_demo_supervision import running
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

BLOCK = re.compile(r"^```bash walkthrough-(\w+)\n(.*?)^```$", re.S | re.M)
ANSWER = "# answers: "
READY_S = 240
ANSWER_S = 45  # how long a block may take to show its answers (buses appear, trials fill)


@dataclass(frozen=True)
class Step:
    command: str
    answer: str | None


def walkthrough(readme: str) -> dict[str, list[Step]]:
    """Each role's steps: a command line and the text its output must hold (None for a
    line that only sets a variable)."""
    roles: dict[str, list[Step]] = {}
    for role, body in BLOCK.findall(readme):
        steps: list[Step] = []
        for line in body.splitlines():
            if line.startswith(ANSWER):
                assert steps and steps[-1].answer is None, f"{role}: answer without command"
                steps[-1] = Step(steps[-1].command, line[len(ANSWER) :].strip())
            elif line.strip():
                steps.append(Step(line, None))
        roles[role] = steps
    return roles


def script(steps: list[Step]) -> str:
    """Bash that runs the steps in order and marks where each command's output starts."""
    lines = ["set -u", "exec 2>&1"]  # one stream: each output follows its marker
    for i, s in enumerate(steps):
        lines += [f"printf '\\n@@step {i}\\n'", s.command]  # after output with no newline
    return "\n".join(lines) + "\n"


def outputs(text: str, n: int) -> list[str]:
    parts = re.split(r"^@@step (\d+)$", text, flags=re.M)
    found = {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    return [found.get(i, "") for i in range(n)]


def test_parser_reads_commands_and_answers() -> None:
    md = "x\n```bash walkthrough-a\nA=1\necho $A\n# answers: 1\n```\n"
    assert walkthrough(md) == {"a": [Step("A=1", None), Step("echo $A", "1")]}
    assert outputs("@@step 0\nhello\n@@step 1\n", 2) == ["\nhello\n", "\n"]


@pytest.mark.timeout(READY_S + 4 * ANSWER_S + 60)
def test_every_role_of_the_readme_walkthrough_answers() -> None:
    roles = walkthrough((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert set(roles) == {"operator", "council", "resident", "staff", "public"}
    assert all(any(s.answer for s in steps) for steps in roles.values())
    root = server_dir("mebuku-walkthrough-")  # the servers' own users can enter it as root
    state = root / "state"
    try:
        _walk(roles, state)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _walk(roles: dict[str, list[Step]], state: Path) -> None:
    with running(state) as demo:
        demo.wait_ready(READY_S)
        api = f"http://127.0.0.1:{demo.info()['ports']['api']}"  # type: ignore[index]
        keys = json.loads((state / "api-keys.json").read_text())
        assert (state / "api-keys.json").stat().st_mode & 0o777 == 0o600
        by = {(k["role"], k["operator_id"]): k["key"] for k in keys}
        env = {
            **demo.env,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "API": api,
            "OPERATOR_KEY": by[("operator", "gunmachuo")],
            "TAXI_KEY": by[("operator", "demo-taxi")],
            "COUNCIL_KEY": by[("council", None)],
            "ADMIN_KEY": by[("admin", None)],
        }
        # The demo's own output: each key whole on its line, and a resident token.
        started = wait_until(lambda: "Ctrl-C で停止します。" in demo.output(), 60, every=0.5)
        out = demo.output()
        assert started, out[-3000:]
        for k in keys:
            assert f"\n{k['key']}\n" in out
        assert "利用者のセッショントークン（resident-01）" in out
        failures = []
        for role, steps in roles.items():
            missing: list[str] = []

            def answered(steps: list[Step] = steps, missing: list[str] = missing) -> bool:
                run = subprocess.run(
                    ["bash", "-c", script(steps)],
                    env=env,
                    cwd=state.parent,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                got = outputs(run.stdout, len(steps))
                missing[:] = [
                    f"{s.command}\n  wanted {s.answer!r}, got {o.strip()[:400]!r}"
                    for s, o in zip(steps, got, strict=True)
                    if s.answer is not None and s.answer not in o
                ]
                return not missing

            # poll: buses and 5G samples arrive as the demo runs
            wait_until(answered, ANSWER_S, every=2)
            failures += [f"[{role}] {m}" for m in missing]
        assert not failures, "\n".join(failures) + "\n--- demo log:\n" + demo.output()[-3000:]
        assert demo.stop(signal.SIGTERM) == 0
