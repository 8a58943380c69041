"""The HTML report (neurocorr_core.report); the report in a real browser."""

import base64
import dataclasses
import html.parser
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from browser import Browser, needs_chromium
from neurocorr_core import compare
from neurocorr_core import report as rep
from numpy_models import mlp

pytest.importorskip("matplotlib", reason="the report's figures need matplotlib: pip install 'neurocorr-core[plots]'")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def result(pm):
    x = np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)
    return compare(mlp(0, [12, 8], dead=3), mlp(1, [10, 10]), x, layers_a="*", layers_b="*",
                   plugin_manager=pm)


class Page(html.parser.HTMLParser):
    """Collects what a self-contained page must not have and what it must."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.external: list[tuple[str, str]] = []
        self.scripts = 0
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith("data:") and not value.startswith("#"):
                self.external.append((tag, value))
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


def test_report_is_self_contained_with_every_section(result):
    text = rep.html_report(result)
    page = parse(text)
    assert page.headings == ["Models", "Scores", "Heatmaps", "Layers", "Dead neurons", "Configuration",
                             "Plugin versions"]
    assert page.external == [] and page.scripts == 0 and "http" not in text
    assert len(page.images) == 3  # two heatmaps and the per-neuron histogram
    for img in page.images:
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
        assert img["alt"].startswith(("heatmap", "histogram"))


def test_report_shows_scores_config_dead_neurons_and_versions(result):
    text = rep.html_report(result)
    for value in (result.score.a_to_b, result.score.b_to_a, result.score.symmetric):
        assert f"{value:.4f}" in text
    assert "No confidence interval or significance test was computed" in text
    assert "<th>depth_penalty</th><td>paper</td>" in text
    assert "<th>pearson</th>" in text and result.versions["pearson"] in text
    dead = {lr.info.name: lr.dead for lr in result.layers_a}
    assert dead["act0"] == 3  # mlp(..., dead=3): the first ReLU layer has three dead units
    assert '<tr class="dead"><td>A</td><td><code>act0</code></td><td class="num">3</td>' in text
    total = sum(lr.dead for lr in (*result.layers_a, *result.layers_b))
    assert total >= 3 and f"{total} neuron(s) were constant over the probe" in text


def test_report_shows_the_confidence_interval_and_permutation_test(pm):
    x = np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)
    res = compare(mlp(0, [12, 8]), mlp(1, [10]), x, permutations=19, bootstrap=25, plugin_manager=pm)
    sig = res.significance
    text = rep.html_report(res)
    assert f"95% bootstrap confidence interval of the symmetric score: <strong>[{sig.ci[0]:.4f}, " \
           f"{sig.ci[1]:.4f}]</strong> (25 resamples of the probe)" in text
    assert f"z = {sig.z:.4f}, p = {sig.p_value:.4f}" in text and "19 shuffles" in text


def test_report_shows_the_standard_error_of_a_sampled_comparison(pm):
    x = np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)
    res = compare(mlp(0, [40, 40]), mlp(1, [40, 40]), x, sample_neurons=0.5, plugin_manager=pm)
    assert res.standard_error is not None
    text = rep.html_report(res)
    assert "<th>standard error</th>" in text and f"{res.standard_error['a_to_b']:.4f}" in text


def test_values_are_escaped(result):
    hostile = dataclasses.replace(result, model_a="<script>alert(1)</script>.onnx")
    text = rep.html_report(hostile)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;.onnx" in text


def test_unknown_result_fields_are_shown_not_dropped(result):
    class Grown(type(result)):
        def to_dict(self):
            return {**super().to_dict(), "atlas": {"reference": "net1", "predicted_accuracy": 0.93}}

    text = rep.html_report(Grown(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)}))
    assert "<h2>Further results</h2>" in text and "predicted_accuracy" in text and "0.9300" in text


def test_write_report_is_atomic(result, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    rep.write_report(result, path)
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed half-way")

    monkeypatch.setattr("neurocorr_core.plots.heatmap", broken)
    with pytest.raises(RuntimeError, match="half-way"):
        rep.write_report(result, tmp_path / "second.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- the report in a real browser -----------------------------------------------------------------

def open_in_browser(path: Path) -> dict:
    """Load ``path``; return the console/log problems, the state of every image and a screenshot."""
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(Path(profile))
        try:
            target = browser.send("Target.createTarget", url="about:blank")["targetId"]
            session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                browser.send(f"{domain}.enable", session)
            browser.send("Page.navigate", session, url=path.resolve().as_uri())
            browser.wait_for("Page.loadEventFired")
            images = browser.send("Runtime.evaluate", session, returnByValue=True, expression="""
                [...document.images].map(i => ({complete: i.complete, natural: i.naturalWidth,
                    shown: i.getBoundingClientRect().width, alt: i.alt,
                    visible: getComputedStyle(i).visibility === 'visible' && i.offsetParent !== null}))
            """)["result"]["value"]
            metrics = browser.send("Page.getLayoutMetrics", session)["cssContentSize"]
            shot = browser.send("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                                clip={"x": 0, "y": 0, "width": 1280, "height": metrics["height"], "scale": 1})
            time.sleep(0.2)  # late console messages
            browser.send("Runtime.evaluate", session, expression="1")
        finally:
            browser.close()
    problems = [e for e in browser.events if _is_problem(e)]
    return {"problems": problems, "images": images, "screenshot": base64.b64decode(shot["data"])}


def _is_problem(event: dict) -> bool:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        return True
    if method == "Runtime.consoleAPICalled":
        return params.get("type") in ("error", "warning", "assert")
    if method == "Log.entryAdded":
        return params.get("entry", {}).get("level") in ("error", "warning")
    return False


def colourful_pixels(png: bytes) -> tuple[int, float]:
    """(number of strongly coloured pixels, share of non-white pixels) of a screenshot."""
    import matplotlib.image

    rgb = matplotlib.image.imread(io.BytesIO(png))[..., :3]
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    return int((saturation > 0.25).sum()), float((rgb.min(axis=2) < 0.95).mean())


@needs_chromium
@pytest.mark.slow
def test_report_renders_in_chromium_with_visible_heatmaps_and_no_console_errors(result, tmp_path):
    path = rep.write_report(result, tmp_path / "report.html")
    seen = open_in_browser(path)
    assert seen["problems"] == [], seen["problems"]
    assert len(seen["images"]) == 3  # two heatmaps and the per-neuron histogram
    for img in seen["images"]:
        assert img["complete"] and img["natural"] > 300 and img["shown"] > 300 and img["visible"], img
    (tmp_path / "screenshot.png").write_bytes(seen["screenshot"])
    coloured, inked = colourful_pixels(seen["screenshot"])
    assert coloured > 50_000, f"only {coloured} coloured pixels: the heatmaps are not visible"
    assert inked > 0.05, "the page looks blank"


@needs_chromium
@pytest.mark.slow
def test_the_browser_check_catches_a_broken_page(result, tmp_path):
    """The same checks on a page with a console error, a script error and a broken image fail."""
    text = rep.html_report(result)
    broken = text.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1).replace(
        "</body>", "<script>console.error('boom'); undefinedFunction();</script></body>")
    plain = tmp_path / "plain.html"
    plain.write_text(text.split("<section>\n<h2>Heatmaps")[0] + "</body></html>")
    (tmp_path / "broken.html").write_text(broken)
    seen = open_in_browser(tmp_path / "broken.html")
    kinds = {e["method"] for e in seen["problems"]}
    assert {"Runtime.consoleAPICalled", "Runtime.exceptionThrown"} <= kinds
    assert seen["images"][0]["natural"] == 0, "the corrupted image must not load"
    coloured, inked = colourful_pixels(open_in_browser(plain)["screenshot"])
    assert coloured < 50_000 and inked > 0.0, "a page without heatmaps has few coloured pixels"


def test_per_neuron_histogram_of_the_results_best_match_scores(result):
    scores = rep.neuron_scores(result)
    assert set(scores) == {"A → B", "B → A"}
    np.testing.assert_array_equal(scores["A → B"], result.value_a)  # every neuron matched under max
    assert len(scores["B → A"]) == sum(lr.neurons for lr in result.layers_b)
    page = parse(rep.html_report(result))
    assert [img["alt"] for img in page.images] == ["heatmap A to B", "heatmap B to A",
                                                   "histogram of per-neuron scores"]


# -- a layer-level metric speaks its own words ------------------------------------------------------
@pytest.fixture
def cka_result(pm):
    if "cka" not in pm.names("metric"):
        pytest.skip("needs the cka metric: pip install -e plugins/neurocorr-cka")
    from numpy_models import cnn

    x = np.random.default_rng(0).normal(size=(80, 1, 8, 8)).astype(np.float32)
    return compare(cnn(0), cnn(1), x, metric="cka", plugin_manager=pm), x


def naive_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s linear CKA from its definition, in float64: ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_the_summary_of_cka_is_its_layer_by_layer_matrix(cka_result):
    from neurocorr_core.summary import summary
    from numpy_models import cnn

    result, x = cka_result
    text = summary(result)
    for neuron_words in ("matching", "dead", "best-match", "best match"):
        assert neuron_words not in text, neuron_words
    assert "cka is symmetric" in text  # one matrix, not two
    names = [lr.info.name for lr in result.layers_b]
    header = next(line for line in text.splitlines() if line.split() == names)
    rows = text.splitlines()[text.splitlines().index(header) + 1:][:len(result.layers_a)]
    printed = np.array([[float(v) for v in row.split()[1:]] for row in rows])
    # each cell against CKA computed from the activations (channel view: spatial mean per channel)
    acts_a, acts_b = cnn(0).run(x), cnn(1).run(x)

    def channels(a: np.ndarray) -> np.ndarray:
        return a.reshape(len(a), a.shape[1], -1).mean(axis=2) if a.ndim == 4 else a

    expected = np.array([[naive_linear_cka(channels(acts_a[a].astype(np.float64)),
                                           channels(acts_b[b].astype(np.float64)))
                          for b in names] for a in (lr.info.name for lr in result.layers_a)])
    np.testing.assert_allclose(printed, expected, atol=6e-5)  # printed with 4 decimals


def test_the_report_of_cka_has_one_heatmap_and_no_neuron_words(cka_result):
    result, _ = cka_result
    text = rep.html_report(result)
    page = parse(text)
    assert len(page.images) == 1 and "symmetric" in text
    assert "Dead neurons" not in page.headings
    assert "best-match" not in text and "highest cka with a layer of the other model" in text


def test_the_heatmap_file_of_cka_is_one_heatmap(cka_result):
    from neurocorr_core import plots

    result, _ = cka_result
    fig = plots.heatmaps(result)
    assert sum(len(ax.images) for ax in fig.axes) == 1
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), result.layer_table, atol=1e-12)


def test_a_neuron_metric_keeps_both_heatmaps_and_its_dead_neurons(result):
    page = parse(rep.html_report(result))
    assert len(page.images) == 3 and "Dead neurons" in page.headings
