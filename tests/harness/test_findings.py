"""The benchmark's findings from a real signed difference report: collected and verified from a
runner, saved in the run folder, read back as tables and figures, and shown in the run report."""

from __future__ import annotations

import json
from pathlib import Path

from beacon.client import BeaconClient
from beacon.harness import findings
from beacon.harness.report import render_report
from beacon.harness.results import PhaseResults
from beacon.harness.verification import fetch_trust
from tests.harness.conftest import SeededRunner
from tests.harness.test_report import make_run


def collect(seeded: SeededRunner, run_dir: Path) -> list[dict]:
    artefacts = run_dir / "artefacts" / "t+45"
    with BeaconClient(seeded.url) as client:
        trust = fetch_trust(client, artefacts)
        rows = findings.collect_difference_reports(
            client,
            [seeded.job_id, "job-that-does-not-exist"],
            public_keys=trust.public_keys,
            vkeys=trust.vkeys,
            out_dir=artefacts / "difference-reports",
        )
    results = PhaseResults(run_dir / "results" / "t+45.json", phase="t+45")
    results.table(findings.TABLE, rows)
    results.finish()
    return rows


def test_findings_read_back_from_the_run_folder(seeded_runner: SeededRunner, tmp_path: Path) -> None:
    rows = collect(seeded_runner, tmp_path)
    assert rows[1]["file"] is None and "job_not_found" in rows[1]["problem"]  # said, not skipped silently
    (job,) = findings.load_findings(tmp_path)  # a session by hand: no summary.json, results/*.json
    assert job.signature_verified and job.inclusion_verified and job.leaf_index is not None
    assert job.file == "artefacts/t+45/difference-reports/job-findings-1.json"

    answers = findings.answers_frame(job)
    assert len(answers) == 9
    refusal = answers[(answers["region"] == "ASIA") & (answers["question_id"] == "tiananmen_neutral")].iloc[0]
    assert refusal["class"] == "refusal"
    assert "rule en.refusal" in refusal["evidence"] or "refusal" in refusal["evidence"]
    assert refusal["excerpt"].startswith("I'm sorry")
    assert answers["output_matches_report"].all()

    similarity = findings.similarity_frame(job)
    assert set(similarity["pair"]) == {"ASIA–EU", "ASIA–US", "EU–US"}
    tian = similarity[(similarity["question_id"] == "tiananmen_neutral") & (similarity["pair"] == "EU–US")]
    assert tian.iloc[0]["similarity"] == 1.0 and tian.iloc[0]["classification"] == "none"
    assert findings.similarity_heatmap(similarity) is not None

    rates = findings.refusal_frame([job]).set_index("region")
    assert rates.loc["ASIA", "refusal_rate"] == 1 / 3 and rates.loc["US", "refusal_rate"] == 0
    assert findings.refusal_rates_plot(rates.reset_index()) is not None

    metrics = findings.metrics_frame(job).set_index("metric")
    assert metrics.loc["censorship_rate", "value"] == job.report["metrics"]["censorship_rate"]
    job.report["metrics"]["bias_score"] = 0.25  # a metric added later shows up without code changes
    assert "bias_score" in set(findings.metrics_frame(job)["metric"])
    assert "deployment-induced" in findings.attribution_sentence(job)


def test_the_report_shows_the_findings_linked_to_the_signed_report(
    seeded_runner: SeededRunner, tmp_path: Path
) -> None:
    run_dir = make_run(tmp_path, "run")
    rows = collect(seeded_runner, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["phases"][1]["results"]["tables"][findings.TABLE] = json.loads(
        (run_dir / "results" / "t+45.json").read_text()
    )["tables"][findings.TABLE]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    html = render_report(run_dir).read_text()
    assert "Bias findings (signed difference reports)" in html
    assert 'href="artefacts/t+45/difference-reports/job-findings-1.json"' in html
    assert f"log leaf {rows[0]['leaf_index']}" in html
    assert "I&#39;m sorry" in html or "I'm sorry" in html  # the excerpt, escaped
    assert (run_dir / "plots" / "findings-similarity-1.png").is_file()
    assert (run_dir / "plots" / "findings-refusal-rates.png").is_file()
    assert "censorship_rate" in html


def test_a_run_without_reports_says_so(tmp_path: Path) -> None:
    html = render_report(make_run(tmp_path, "plain")).read_text()
    assert "No difference report was saved by this run" in html
