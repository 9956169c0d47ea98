"""The attachment memory bench, small: a 1 MiB image, one round, against a real server on SQLite.

This keeps `make bench-attachments` from rotting; it asserts that every figure is produced, never a memory amount or
a speed (that is the full run's job, BENCHMARKS.md "Attachments: server memory").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import attachments
from bench.harness import REPO


@pytest.fixture(scope="module")
def small_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-attachments")
    assert attachments.main(["--megabytes", "1", "--rounds", "1", "--out", str(out)]) == 0
    report = json.loads((out / "attachments-latest.json").read_text())
    report["markdown"] = (out / "attachments-latest.md").read_text()
    return dict(report)


def the_round(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["rounds"]) == 1
    return dict(report["rounds"][0])


def test_the_image_is_a_png_of_about_the_size_asked(small_report: dict[str, Any]) -> None:
    file = small_report["file"]
    assert abs(file["bytes"] - 2**20) < 2**20 // 50
    assert file["width"] * file["height"] > 0


def test_the_upload_is_accepted_whole(small_report: dict[str, Any]) -> None:
    attachment = the_round(small_report)["attachment"]
    file = small_report["file"]
    assert attachment["id"]
    assert attachment["byteSize"] == file["bytes"]
    assert (attachment["mimeType"], attachment["kind"]) == ("image/png", "IMAGE")
    assert (attachment["width"], attachment["height"]) == (file["width"], file["height"])


def test_the_run_with_the_image_completes_and_the_model_gets_its_bytes(small_report: dict[str, Any]) -> None:
    figures = the_round(small_report)
    assert figures["run_terminal"] == "RunCompleted"
    assert figures["model_received_bytes"] == small_report["file"]["bytes"]


def test_every_figure_is_measured_and_reported(small_report: dict[str, Any]) -> None:
    figures = the_round(small_report)
    assert small_report["baseline_rss"] > 0
    assert small_report["samples"] > 0
    for label, key, _show in (*attachments.ROWS, *attachments.INFO_ROWS):
        assert isinstance(figures[key], int | float), key
        assert isinstance(small_report["medians"][key], int | float), key
        assert label in small_report["markdown"], label
    for ratio in ("upload_peak_over_file", "run_peak_over_file"):
        assert isinstance(small_report["medians"][ratio], float), ratio


def test_the_report_is_written_where_asked_and_not_into_the_results(small_report: dict[str, Any]) -> None:
    assert small_report["config"]["out_dir"] != str(REPO / "bench" / "results")
    assert small_report["markdown"].startswith("Run ")
