"""`rai ranking/history/submitted` tables: cut to the terminal's width only on a terminal; piped or
written to a file, every value whole and every row on one line."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from rich.console import Console

from rai.client import cli_ranking
from rai.domain.answers import History, HistoryRow, Submitted, SubmittedKind, SubmittedRow

LONG_USER = "a-student-with-a-remarkably-long-username-that-no-terminal-column-would-hold"
OTHER_USER = "another-student-whose-name-is-also-far-too-long-for-eighty-columns-of-text"
LONG_NOTE = "not ranked: correctness 0.5 is below 0.9, and this explanation goes on well past any terminal width"
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeClient:
    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def ask(self, what, **kwargs):
        self.asked.append((what, kwargs))
        return self.answers[what]


class FakeObj:
    def __init__(self, answers):
        self._client = FakeClient(answers)

    def client(self):
        return self._client


def submitted_answer() -> Submitted:
    rows = [SubmittedRow(job_id="job-1", username=LONG_USER, state="succeeded", submitted_at=AT, value=0.42,
                         valid=True, counts=True),
            SubmittedRow(job_id="job-2", username=OTHER_USER, state="succeeded", submitted_at=AT, value=0.9,
                         valid=False, note=LONG_NOTE)]
    return Submitted(team="t1", kinds=[SubmittedKind(project="conv", kind="final", metric="timing.op_time",
                                                     rows=rows)])


def history_answer() -> History:
    return History(username=LONG_USER, rows=[HistoryRow(job_id="job-2", state="failed", submitted_at=AT,
                                                        duration=12.0, message=LONG_NOTE)])


def line_with(text: str, output: str) -> str:
    lines = [line for line in output.splitlines() if text in line]
    assert lines, f"{text!r} not whole on any line of:\n{output}"
    return lines[0]


@pytest.fixture
def answers():
    return {"submitted": submitted_answer(), "history": history_answer()}


def test_piped_submitted_prints_whole_values_one_row_a_line(answers, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # what a pipe gets: rich would lay the table out at 80 columns
    result = CliRunner().invoke(cli_ranking.submitted, [], obj=FakeObj(answers))  # stdout is not a terminal
    assert result.exit_code == 0, result.output
    output = result.output
    assert "…" not in output and "\x1b[" not in output
    first = line_with(LONG_USER, output)
    assert "job-1" in first and "0.42" in first and first.lstrip().startswith("*")
    second = line_with(OTHER_USER, output)
    assert "job-2" in second and LONG_NOTE in second  # the last column is not cut either
    assert len(second) > 80


def test_piped_history_keeps_the_whole_message(answers, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(cli_ranking.history, [], obj=FakeObj(answers))
    assert result.exit_code == 0, result.output
    assert "job-2" in line_with(LONG_NOTE, result.output)


def test_table_into_a_stream_that_is_not_a_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(cli_ranking, "out", Console(file=stream, highlight=False, soft_wrap=True, width=40))
    cli_ranking._print_table(("job", "by", "note"), [("job-1", LONG_USER, LONG_NOTE), ("job-2", OTHER_USER, "-")])
    output = stream.getvalue()
    assert "job-1" in line_with(LONG_USER, output) and LONG_NOTE in line_with(LONG_USER, output)
    assert "job-2" in line_with(OTHER_USER, output)
    assert "…" not in output


def test_on_a_terminal_only_the_last_column_is_cut_to_its_width(monkeypatch):
    stream = io.StringIO()
    terminal = Console(file=stream, highlight=False, soft_wrap=True, width=120, force_terminal=True,
                       color_system=None)
    monkeypatch.setattr(cli_ranking, "out", terminal)
    cli_ranking._print_table(("job", "by", "note"), [("job-1", LONG_USER, LONG_NOTE)])
    row = line_with(LONG_USER, stream.getvalue())  # every column but the last stays whole
    assert row.rstrip().endswith("…") and LONG_NOTE not in row
    assert len(row.rstrip()) <= 120


def test_json_stays_whole(answers):
    result = CliRunner().invoke(cli_ranking.submitted, ["--json"], obj=FakeObj(answers))
    assert result.exit_code == 0 and LONG_USER in result.output and LONG_NOTE in result.output
