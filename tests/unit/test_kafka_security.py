"""Kafka client security from the environment: one place builds aiokafka's options."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka.errors import UnknownTopicOrPartitionError

from app.cli import main
from app.commands import CommandError
from app.kafka_commands import broker_faults
from consumers.kafka_security import KafkaSecurity, KafkaSecurityError

PASSWORD = "s3cret-scram-password"


def _secure(tmp_path: Path, **overrides: str) -> dict[str, str]:
    password_file = tmp_path / "ledger.password"
    password_file.write_text(PASSWORD + "\n")
    return {
        "LEDGER_KAFKA_SECURITY": "sasl_ssl",
        "LEDGER_KAFKA_USERNAME": "ledger",
        "LEDGER_KAFKA_PASSWORD_FILE": str(password_file),
    } | overrides


def test_plaintext_is_the_default() -> None:
    assert KafkaSecurity.from_environment({}).client_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_reads_the_password_from_its_file_and_verifies_the_broker(
    tmp_path: Path,
) -> None:
    security = KafkaSecurity.from_environment(_secure(tmp_path))
    options = security.client_options()
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ledger",
        "sasl_plain_password": PASSWORD,
    }
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert PASSWORD not in security.describe()
    assert PASSWORD not in repr(security)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"LEDGER_KAFKA_SECURITY": "ssl"}, "it is one of plaintext, sasl_ssl"),
        ({"LEDGER_KAFKA_USERNAME": ""}, "needs LEDGER_KAFKA_USERNAME and"),
        ({"LEDGER_KAFKA_PASSWORD_FILE": "/nonexistent/pw"}, "cannot be read"),
        ({"LEDGER_KAFKA_CA_FILE": "/nonexistent/ca.crt"}, "is not a readable PEM"),
    ],
)
def test_an_incomplete_setting_is_a_sentence(
    tmp_path: Path, overrides: dict[str, str], words: str
) -> None:
    with pytest.raises(KafkaSecurityError, match=words):
        KafkaSecurity.from_environment(_secure(tmp_path, **overrides)).client_options()


def test_the_cli_says_so_in_one_line_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in _secure(tmp_path, LEDGER_KAFKA_CA_FILE="/nonexistent/ca.crt").items():
        monkeypatch.setenv(name, value)
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text('{"type": "x"}\n')
    assert main(["--bootstrap", "127.0.0.1:1", "publish", str(inbox)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ledger: LEDGER_KAFKA_CA_FILE /nonexistent/ca.crt is not a readable")
    assert PASSWORD not in err


def test_ledger_run_health_endpoint_binds_loopback_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.cli import build_parser  # noqa: PLC0415

    monkeypatch.delenv("LEDGER_HEALTH_HOST", raising=False)
    assert build_parser().parse_args(["run"]).health_host == "127.0.0.1"
    arguments = build_parser().parse_args(["run", "--health-host", "0.0.0.0"])  # noqa: S104
    assert arguments.health_host == "0.0.0.0"  # noqa: S104 - what a container's probe needs


def _publish_finds_no_inbox() -> None:
    with broker_faults("kafka:9092"):
        raise UnknownTopicOrPartitionError


def test_a_topic_that_is_missing_and_may_not_be_created_says_who_makes_it() -> None:
    """Upstream publishing before the ledger ever ran, on a broker where it may not create
    topics, was told '[Error 3] UnknownTopicOrPartitionError'."""
    with pytest.raises(CommandError) as refused:
        _publish_finds_no_inbox()
    assert refused.value.status == 1
    assert str(refused.value) == (
        "the Kafka broker at kafka:9092 has no such topic, and this principal may not create "
        "it: `ledger run` creates the ledger's topics when it first starts, or an "
        "administrator makes them (docs/security.md)"
    )
