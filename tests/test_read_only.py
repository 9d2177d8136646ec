"""A read-only app (what `deepdive serve` gives viewers): no trainer started, stopped or
resumed from the Train pane, no screenshot written; each refusal says so on screen."""

from __future__ import annotations

import pytest

from tui.app import DeepdiveApp
from tui.panes import train_proc

pytestmark = pytest.mark.anyio


def notices(app: DeepdiveApp) -> list[str]:
    return [n.message for n in app._notifications]


@pytest.fixture
def no_trainer(monkeypatch) -> list:
    """Trainers and stop signals the Train pane would send, recorded instead of done."""
    calls: list = []

    def spawn(run_dir, args):
        calls.append(("spawn", run_dir, args))
        raise OSError("not in tests")

    monkeypatch.setattr(train_proc, "spawn_trainer", spawn)
    monkeypatch.setattr(train_proc, "ask_to_stop", lambda pid, hard=False: calls.append(pid))
    return calls


async def test_read_only_app_refuses_ctrl_s_and_every_export(tmp_path, monkeypatch, root):
    from tui.exports import ReadOnlyError, write_export

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEEPDIVE_EXPORT_DIR", str(tmp_path / "exports"))
    app = DeepdiveApp(read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert any("read-only" in m and "screenshot" in m for m in notices(app)), notices(app)
        with pytest.raises(ReadOnlyError):  # the one door every pane's export goes through
            write_export("compare.md", "# a viewer's export")
    assert not list(tmp_path.rglob("*.*"))  # nothing written, here or in the export folder


async def test_read_only_train_pane_refuses_to_start_stop_or_resume(root, no_trainer):
    app = DeepdiveApp(start_tab="train", read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        await pilot.click("#train-new")
        await pilot.pause(0.1)
        pane = app.pane("train")
        for action in ("new_run", "resume", "stop"):  # the keys n / r / s and the palette
            await pane.run_action(action)
        await pilot.pause(0.1)
        assert no_trainer == []
        said = notices(app)
        for what in ("starting training", "resuming training", "stopping training"):
            assert any(what in m and "--allow-train" in m for m in said), said
        assert not list(root.iterdir())  # no run folder made


async def test_a_writable_app_still_starts_a_trainer(root, no_trainer):
    app = DeepdiveApp(start_tab="train")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        await app.pane("train").run_action("new_run")
        await pilot.pause(0.2)
        await pilot.press("y")  # the new-run question (tui/widgets/confirm.py)
        await pilot.pause(0.2)
        assert [c[0] for c in no_trainer] == ["spawn"]
        assert not any("read-only" in m for m in notices(app))
