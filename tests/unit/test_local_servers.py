"""deploy/local/kafka and deploy/local/postgres without Java or PostgreSQL: the messages a
person sees when something is missing, and status on an empty data folder."""

import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
script_timeout_s = 60.0


def run_script(server: str, command: str, environment: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, str(REPOSITORY / "deploy" / "local" / server), command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=script_timeout_s,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def fake_java(folder: Path, version_line: str) -> None:
    """A `java` on PATH that only answers `java -version`, as a JDK does, on stderr."""
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)


@pytest.fixture
def bare_environment(tmp_path: Path) -> dict[str, str]:
    """No java, no mvn on PATH; caches and data in a temporary folder."""
    programs = tmp_path / "bin"
    programs.mkdir()
    return {
        "PATH": str(programs),
        "LEDGER_CACHE": str(tmp_path / "cache"),
        "LEDGER_KAFKA_DATA": str(tmp_path / "kafka"),
        "LEDGER_PG_DATA": str(tmp_path / "pg"),
    }


def test_kafka_start_without_java_says_what_to_install(bare_environment: dict[str, str]) -> None:
    code, output = run_script("kafka", "start", bare_environment)
    assert code == 1
    assert output.strip().startswith("Java 17 or newer is needed to run Kafka: install it")
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_kafka_check_refuses_java_11(bare_environment: dict[str, str]) -> None:
    fake_java(Path(bare_environment["PATH"]), 'openjdk version "11.0.2" 2019-01-15')
    code, output = run_script("kafka", "check", bare_environment)
    assert code == 1
    assert "is version 11: install a newer one." in output
    assert "Traceback" not in output


def test_kafka_check_asks_for_maven_while_jars_are_not_cached(
    bare_environment: dict[str, str],
) -> None:
    fake_java(Path(bare_environment["PATH"]), 'openjdk version "17.0.15" 2025-04-15')
    code, output = run_script("kafka", "check", bare_environment)
    assert code == 1
    assert output.strip().startswith("Maven is needed once to fetch the Kafka jars")
    assert "Traceback" not in output


def test_kafka_status_on_an_empty_data_folder_is_not_running(
    bare_environment: dict[str, str],
) -> None:
    code, output = run_script("kafka", "status", bare_environment)
    assert (code, output.split(" (")[0]) == (3, "Kafka is not running")


def test_kafka_refuses_a_port_that_is_not_a_number(bare_environment: dict[str, str]) -> None:
    code, output = run_script("kafka", "start", {**bare_environment, "LEDGER_KAFKA_PORT": "x"})
    assert code == 1
    assert output.strip() == "LEDGER_KAFKA_PORT='x' is not a TCP port number (1 to 65535)."


def test_postgres_status_on_an_empty_data_folder_is_not_running(
    bare_environment: dict[str, str],
) -> None:
    code, output = run_script("postgres", "status", bare_environment)
    assert (code, output.split(" (")[0]) == (3, "PostgreSQL is not running")


@pytest.mark.parametrize("server", ["kafka", "postgres"])
def test_unknown_command_prints_usage(server: str, bare_environment: dict[str, str]) -> None:
    code, output = run_script(server, "restart", bare_environment)
    assert code == 2
    assert output.startswith(f"usage: deploy/local/{server} start|stop|status")
