"""The `ledger` command follows the conventions people expect: settings before or after the
command, every option's environment variable and default in its help, `--version`, and
`ledger rejects` as a table with a header, JSON or CSV, its count on stderr."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from app.cli import SETTINGS, build_parser, main
from app.contract_docs import _commands
from ledger import snapshots
from ledger.rejections import RejectRecord
from ledger.store_privileges import STORE_LAYOUT
from projections import resume

REFUSED_LINE = (
    '{"event_id":"dep-2","type":"deposit","occurred_at":"2026-11-24T09:00:00Z",'
    '"account_id":"C-1","asset":"USD","amount":12.5}'
)
INBOX = "\n".join(
    [
        '{"event_id":"open-1","type":"account_opened","occurred_at":"2026-11-24T09:00:00Z",'
        '"account_id":"C-1","investor_class":"professional"}',
        REFUSED_LINE,
        "not json",
    ]
)


def test_settings_are_accepted_after_the_command_and_win_there() -> None:
    parser = build_parser()
    args = parser.parse_args(["publish", "records.jsonl", "--bootstrap", "10.0.0.7:9093"])
    assert args.bootstrap == "10.0.0.7:9093"
    args = parser.parse_args(["--store", "sqlite:///a.db", "report", "margin-calls"])
    assert args.store == "sqlite:///a.db"
    args = parser.parse_args(
        ["--store", "sqlite:///a.db", "audit", "verify", "--store", "sqlite:///b.db"]
    )
    assert args.store == "sqlite:///b.db"


def test_the_environment_gives_a_settings_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_TOPIC_PREFIX", "desk7")
    assert build_parser().parse_args(["publish", "-"]).topic_prefix == "desk7"


def test_every_commands_help_gives_each_options_environment_and_default() -> None:
    for leaf, summary in _commands(build_parser()):
        assert summary, f"{leaf.prog} has no one-line help"
        text = leaf.format_help()
        for action in leaf._actions:
            if action.help is None:
                pytest.fail(f"{leaf.prog} {action.dest} has no help")
        settings = [s for s in SETTINGS if s.flag in text]
        assert settings, f"{leaf.prog} lists no setting"
        for setting in settings:
            assert f"env {setting.env}" in " ".join(text.split()), leaf.prog
    (publish,) = (leaf for leaf, _ in _commands(build_parser()) if leaf.prog == "ledger publish")
    help_text = " ".join(publish.format_help().split())
    assert (
        "--bootstrap HOST:PORT Kafka brokers (env LEDGER_KAFKA_BOOTSTRAP; default 127.0.0.1:9092)"
        in help_text
    )
    assert "--store" not in help_text  # publish never opens the store


def test_version_and_a_top_level_help_that_describes_the_tool(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    # The release, then what an upgrade rebuilds when it changed (docs/operations.md): two
    # releases printed "ledger 0.1.0" alike whatever they changed.
    assert capsys.readouterr().out.splitlines() == [
        "ledger 0.1.0",
        STORE_LAYOUT,
        f"book snapshots {snapshots.CODE_DIGEST[:12]}",
        f"views state {resume.CODE_DIGEST[:12]}",
    ]
    description = build_parser().description or ""
    assert "collateral and position ledger" in description
    assert ".md" not in description.split("\n")[0]


@pytest.fixture
def store_with_two_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text(INBOX + "\n")
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert main(["ingest", str(inbox), "--store", store]) == 1
    capsys.readouterr()
    return store


def test_rejects_table_has_a_header_a_readable_origin_and_its_count_on_stderr(
    store_with_two_rejects: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rejects", "--store", store_with_two_rejects]) == 0
    captured = capsys.readouterr()
    header, first, second = captured.out.splitlines()
    assert header.split() == ["number", "reason_code", "origin", "event_id", "detail"]
    assert first.split()[:6] == ["1", "number_not_string", "inbox.jsonl", "line", "2", "dep-2"]
    assert second.split()[:5] == ["2", "malformed_json", "inbox.jsonl", "line", "3"]
    assert captured.err == "2 rejects: malformed_json 1, number_not_string 1\n"


def test_rejects_as_csv_keep_every_field_and_as_json_the_records(
    store_with_two_rejects: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rejects", "--format", "csv", "--store", store_with_two_rejects]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["reason_code"] for row in rows] == ["number_not_string", "malformed_json"]
    assert rows[0]["value"] == REFUSED_LINE
    assert (rows[0]["partition"], rows[0]["offset"], rows[0]["event_id"]) == ("", "2", "dep-2")
    assert list(rows[0]) == list(RejectRecord.__struct_fields__)  # every field, in order
    assert main(["rejects", "--format", "json", "--store", store_with_two_rejects]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["number"] for r in records] == [1, 2]
    # The records as the rejects topic carries them: a value kept whole has no
    # `value_bytes`/`value_sha256` (only a cut one has), a text key no `key_encoding`
    # (only one that is not UTF-8 has), every other field is there.
    whole = set(RejectRecord.__struct_fields__) - {"value_bytes", "value_sha256", "key_encoding"}
    assert all(set(r) == whole for r in records)
    assert records[0]["event_id"] == "dep-2"


def test_rejects_as_json_keep_a_cut_values_length_and_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "inbox.jsonl"
    line = b'{"pad":"' + b"x" * 40_000 + b'"}'
    inbox.write_bytes(line + b"\n")
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    main(["ingest", str(inbox), "--store", store])
    capsys.readouterr()
    assert main(["rejects", "--format", "json", "--store", store]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["reason_code"] == "record_too_large"
    assert (record["value_bytes"], record["value_sha256"]) == (
        len(line),
        hashlib.sha256(line).hexdigest(),
    )


def test_one_reject_is_counted_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text("[]\n")
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    main(["ingest", str(inbox), "--store", store])
    capsys.readouterr()
    assert main(["rejects", "--store", store, "--limit", "5"]) == 0
    assert capsys.readouterr().err == "1 reject: not_an_object 1\n"


def test_docs_cli_lists_every_command_in_its_table_of_commands() -> None:
    """The table named `ledger check`, `stress`, `statements`, `store init` and five more
    nowhere: a person reading it did not learn they exist."""
    text = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    table = text.split("## Commands", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines()[2:]]
    for leaf, _ in _commands(build_parser()):
        words = leaf.prog.split()
        named = any(row.split()[: len(words)] == words for row in rows)
        assert named, f"docs/cli.md's table of commands lacks {leaf.prog}"


@pytest.mark.parametrize(
    "command",
    [["demo", "--topic-prefix", "desk7"], ["journal", "checkpoint", "--bootstrap", "x:1"]],
)
def test_a_command_takes_no_setting_it_would_ignore(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledger demo` makes topics of its own and `journal checkpoint` reads only the store;
    each took a Kafka setting and ignored it."""
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(command)
    assert refused.value.code == 2
    assert f"unrecognized arguments: {command[-2]} {command[-1]}" in capsys.readouterr().err
