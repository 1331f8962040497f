"""The viewer rendered in headless Chromium: it loads cleanly, filters, and colours each token by
the advantage the data gives it."""

from __future__ import annotations

import json
import shutil

import pytest
from turnwise.trainer.report.view import build_viewer
from viewer_browser import Page, chromium, requires_browser, rgba

pytestmark = requires_browser

GREEN, RED = (22, 163, 74), (220, 38, 38)
MAX_ALPHA = 0.8  # viewer.js: full colour at the iteration's largest |advantage|


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def html(synthetic_run, tmp_path_factory):
    return build_viewer(synthetic_run.dir, tmp_path_factory.mktemp("view") / "viewer.html")


@pytest.fixture()
def view(browser, html):
    page = Page(browser, html)
    yield page
    page.page.close()


def test_loads_without_console_errors_on_the_last_iteration(view):
    assert view.list_ids() == ["2|it1/0/0", "2|it1/0/1"]
    assert view.page.text_content("#list-title") == "Trajectories (2 of 2)"
    view.page.click("nav .tab[data-tab=plots]")
    assert view.page.eval_on_selector_all("#plots img", "els => els.every(i => i.naturalWidth > 0)")
    assert view.page.locator("#plots img").count() == 9
    assert view.errors == []


def test_filters(view):
    view.page.click("#iterations li[data-iteration='1']")
    assert len(view.list_ids()) == 8
    view.page.select_option("#f-success", "yes")
    assert view.list_ids() == ["1|it0/0/0", "1|it0/2/0"]
    view.page.select_option("#f-success", "all")
    view.page.fill("#f-rmin", "0.5")
    view.page.fill("#f-rmax", "1")  # rewards 1.0, 0.5, 0.5, 1.0
    assert view.list_ids() == ["1|it0/0/0", "1|it0/1/0", "1|it0/1/1", "1|it0/2/1"]
    view.page.fill("#f-rmin", "")
    view.page.fill("#f-rmax", "")
    view.page.select_option("#f-kind", "pick")
    assert view.list_ids() == ["1|it0/0/0", "1|it0/0/1", "1|it0/0/2"]
    view.page.select_option("#f-kind", "all")
    view.page.select_option("#f-group", "it0/1")
    assert view.list_ids() == ["1|it0/1/0", "1|it0/1/1"]
    view.page.select_option("#f-group", "all")
    view.page.fill("#f-task", "it0/2")
    assert view.list_ids() == ["1|it0/2/0", "1|it0/2/1", "1|it0/2/2"]
    # the view follows the list: the selection moved to a trajectory that passes the filter
    assert view.page.inner_text(".traj-head h2").endswith("it0/2/0")
    view.page.click("#view")
    view.page.keyboard.press("j")  # next in the filtered list
    assert view.page.inner_text(".traj-head h2").endswith("it0/2/1")
    assert view.errors == []


def _expected_colour(advantage: float, scale: float) -> tuple[tuple[int, int, int], float]:
    return (GREEN if advantage >= 0 else RED), min(abs(advantage) / scale, 1.0) * MAX_ALPHA


@pytest.mark.parametrize("iteration", [1, 2])
def test_token_colours_follow_the_advantages(view, synthetic_run, iteration):
    trajs, per_turn = synthetic_run.iterations[iteration]
    scale = max(abs(a) for adv in per_turn for a in adv)  # 1.5 in iteration 1, 0.7 in 2
    view.page.click(f"#iterations li[data-iteration='{iteration}']")
    for traj, advantages in zip(trajs, per_turn):
        view.page.click(f"#traj-list li[data-key='{iteration}|{traj.traj_id}']")
        tokens = view.tokens()
        response = [t for t in tokens if t["kind"] == "response"]
        assert len(response) == traj.num_response_tokens(), traj.traj_id
        masked = [t for t in response if t["mask"] == 0]
        # the fixture masks one token out of the loss: struck through, never coloured
        assert len(masked) == (1 if traj.traj_id == "it1/0/1" else 0)
        assert all(rgba(t["bg"])[3] == 0 for t in masked)
        for tok in response:
            if tok["mask"] == 0:
                continue
            colour, alpha = _expected_colour(float(advantages[tok["turn"]]), scale)
            r, g, b, a = rgba(tok["bg"])
            assert a == pytest.approx(alpha, abs=0.005), (traj.traj_id, tok)
            if alpha > 0:
                assert (r, g, b) == colour, (traj.traj_id, tok)
        # tokens the policy did not generate are never coloured by an advantage
        for tok in tokens:
            if tok["kind"] != "response":
                assert tok["mask"] == 0 and rgba(tok["bg"])[:3] == (246, 248, 250)
    assert view.errors == []


def test_hover_group_view_and_logprob_colouring(view, tmp_path):
    view.page.click("#iterations li[data-iteration='1']")
    view.page.click("#traj-list li[data-key='1|it0/0/1']")
    view.page.hover(".turn >> nth=2 >> .tok >> nth=0")  # turn 1's first response token
    tip = view.page.inner_text("#tooltip")
    assert "token id 4" in tip and "response of turn 1" in tip
    assert "advantage -0.6000" in tip
    assert "log-prob rollout -0.1000   trainer -0.1500   diff -0.0500" in tip
    assert "GiGPO anchor group: 2 turns share" in tip

    view.page.select_option("#colour", "diff")  # |trainer - rollout| = 0.05 on every token
    alphas = {round(rgba(t["bg"])[3], 3) for t in view.tokens() if t["kind"] == "response"}
    assert alphas == {round(0.05 / 0.5 * MAX_ALPHA, 3)}
    view.page.select_option("#colour", "advantage")

    view.page.click("#compare")
    assert view.page.locator(".group .col-head").count() == 3
    view.page.click(".group .cell .badge.anchor >> nth=0")  # anchor s0: every sibling's turn 0
    assert view.page.locator(".cell.anchor-hit").count() == 3
    view.page.screenshot(path=str(tmp_path / "group.png"))
    view.page.click(".group .col-head >> nth=0")
    assert view.page.inner_text(".traj-head h2").endswith("it0/0/0")
    assert view.errors == []


def test_screenshot(view, tmp_path):
    view.page.click("#iterations li[data-iteration='2']")
    view.page.click("#traj-list li[data-key='2|it1/0/1']")
    view.page.check("#show-context")
    path = tmp_path / "viewer.png"
    view.page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
    print(f"screenshot: {path}")
    assert view.errors == []


def test_the_head_says_which_weights_played_the_episode(browser, synthetic_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(synthetic_run.dir, run)
    path = run / "trajectories" / "iter_00002.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["version"] = 1  # iteration 2 trains on what the weights after iteration 1 played
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    page = Page(browser, build_viewer(run, tmp_path / "v.html"))
    try:
        page.page.click("#iterations li[data-iteration='2']")
        page.page.click(f"#traj-list li[data-key='2|{records[0]['traj_id']}']")
        head = page.page.inner_text(".traj-head .kv")
        assert "iteration 2" in head
        assert "played by policy version 1 (the weights after iteration 1)" in head
        page.page.click(f"#traj-list li[data-key='2|{records[1]['traj_id']}']")
        assert ("played by policy version 0 (the starting weights)"
                in page.page.inner_text(".traj-head .kv"))
        assert page.errors == []
    finally:
        page.page.close()
