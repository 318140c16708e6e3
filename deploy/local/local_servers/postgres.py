"""A throwaway PostgreSQL server on 127.0.0.1 with trust authentication and a `ledger` database.

The server programs come from the machine (PATH, then Debian's /usr/lib/postgresql/*/bin);
when they are missing and we run as root with apt-get, `apt-get install -y postgresql`
brings them. initdb refuses to run as root, so as root the cluster belongs to the `postgres`
system user (created when absent). Layout of the data folder: `cluster/` (PGDATA) and
`postgres.log`. fsync stays on: tests kill the server to check crash safety.
"""

import os
import pwd
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from local_servers.process import (
    ServerError,
    cache_root,
    env_path,
    env_port,
    log_tail,
    port_accepts,
)

superuser = "postgres"
database = "ledger"
server_user_default = "postgres"
pg_ctl_timeout_s = 60
apt_timeout_s = 900.0
client_timeout_s = 60.0
server_programs = ("initdb", "pg_ctl", "postgres", "psql", "createdb")
local_config_name = "ledger-local.conf"
# The ledger's three roles (docs/security.md): the owner creates the store's schema and
# tables, the writer appends (`ledger run`, `ledger ingest`), the reader reads (`ledger api`).
owner_role = "ledger_owner"
writer_role = "ledger_writer"
reader_role = "ledger_reader"
ROLES_SQL = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner_role}') THEN
    CREATE ROLE {owner_role} LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{writer_role}') THEN
    CREATE ROLE {writer_role} LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{reader_role}') THEN
    CREATE ROLE {reader_role} LOGIN;
  END IF;
END $$;
ALTER DATABASE {database} OWNER TO {owner_role};
GRANT CONNECT ON DATABASE {database} TO {writer_role}, {reader_role};
"""  # noqa: S608 (the module's own constant names, no input)


@dataclass(frozen=True, kw_only=True)
class PostgresSettings:
    port: int
    data_dir: Path

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "cluster"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def url(self) -> str:
        return self.role_url(superuser)

    def role_url(self, role: str) -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}"


def settings_from_env() -> PostgresSettings:
    return PostgresSettings(
        port=env_port("LEDGER_PG_PORT", 5432),
        data_dir=env_path("LEDGER_PG_DATA", cache_root() / "pg-data"),
    )


def has_programs(directory: Path) -> bool:
    return all((directory / name).is_file() for name in server_programs)


def find_bin_dir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path is not None and has_programs(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent
    debian = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if has_programs(path)]
    debian.sort(key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)
    return debian[-1] if debian else None


def ensure_bin_dir() -> Path:
    found = find_bin_dir()
    if found is not None:
        return found
    install_hint = "PostgreSQL's server programs (initdb, pg_ctl, postgres) are needed"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServerError(f"{install_hint}: install them (Debian: apt-get install -y postgresql).")
    print("Installing PostgreSQL with apt-get install -y postgresql", file=sys.stderr)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        result = subprocess.run(
            command, capture_output=True, text=True, env=environment, check=False,
            timeout=apt_timeout_s,
        )  # fmt: skip
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise ServerError(f"{install_hint}; `{' '.join(command)}` failed:\n{output}")
    found = find_bin_dir()
    if found is None:
        raise ServerError(f"{install_hint}; apt-get installed postgresql but they are not found.")
    return found


def server_user() -> str | None:
    """The user that owns and runs the cluster: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(server_user_default)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--shell", "/usr/sbin/nologin", server_user_default],
            check=True, capture_output=True, timeout=client_timeout_s,
        )  # fmt: skip
    return server_user_default


def run_as(
    user: str | None, command: list[str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    group = None if user is None else pwd.getpwnam(user).pw_gid
    result = subprocess.run(
        command, user=user, group=group, extra_groups=None if user is None else [],
        cwd=cwd, capture_output=True, text=True, check=False, timeout=pg_ctl_timeout_s + 30,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise ServerError(
            f"`{' '.join(command)}` failed with code {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


def prepare_data_dir(settings: PostgresSettings, user: str | None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if user is None:
        return
    account = pwd.getpwnam(user)
    os.chown(settings.data_dir, account.pw_uid, account.pw_gid)
    writable = run_as(user, ["test", "-w", str(settings.data_dir)], Path("/"), check=False)
    if writable.returncode != 0:
        raise ServerError(
            f"The user {user} cannot write {settings.data_dir}: choose a LEDGER_PG_DATA whose "
            "parent folders others may enter (not under /root or a 0700 temporary folder)."
        )


def init_cluster(bin_dir: Path, settings: PostgresSettings, user: str | None) -> None:
    if (settings.cluster_dir / "PG_VERSION").is_file():
        return
    run_as(
        user,
        [str(bin_dir / "initdb"), "--pgdata", str(settings.cluster_dir), "--username", superuser,
         "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync"],
        settings.data_dir,
    )  # fmt: skip
    write_owned(
        settings.cluster_dir / "pg_hba.conf",
        "# deploy/local/postgres: TCP on 127.0.0.1 only, trust (a throwaway test cluster).\n"
        "host all all 127.0.0.1/32 trust\n",
        user,
    )
    config = settings.cluster_dir / "postgresql.conf"
    include = f"\ninclude_if_exists = '{local_config_name}'\n"
    write_owned(config, config.read_text() + include, user)


def write_owned(path: Path, text: str, user: str | None) -> None:
    path.write_text(text)
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(path, account.pw_uid, account.pw_gid)


def write_local_config(settings: PostgresSettings, user: str | None) -> None:
    write_owned(
        settings.cluster_dir / local_config_name,
        "# Written by deploy/local/postgres at every start.\n"
        f"port = {settings.port}\n"
        "listen_addresses = '127.0.0.1'\n"
        "unix_socket_directories = ''\n"
        "max_connections = 200\n"
        "fsync = on\n"
        "synchronous_commit = on\n"
        "full_page_writes = on\n",
        user,
    )


def running_port(bin_dir: Path, settings: PostgresSettings, user: str | None) -> int | None:
    if not settings.cluster_dir.is_dir():
        return None
    status = run_as(
        user, [str(bin_dir / "pg_ctl"), "status", "--pgdata", str(settings.cluster_dir)],
        settings.data_dir, check=False,
    )  # fmt: skip
    if status.returncode != 0:
        return None
    lines = (settings.cluster_dir / "postmaster.pid").read_text().splitlines()
    return int(lines[3]) if len(lines) > 3 and lines[3].isdigit() else None


def ensure_database(bin_dir: Path, port: int, data_dir: Path) -> None:
    connection = ["--host", "127.0.0.1", "--port", str(port), "--username", superuser]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"  # noqa: S608 (a constant)
    found = run_as(
        None, [str(bin_dir / "psql"), *connection, "--dbname", "postgres", "-XtAc", query],
        data_dir,
    )  # fmt: skip
    if found.stdout.strip() != "1":
        run_as(None, [str(bin_dir / "createdb"), *connection, database], data_dir)
    roles = [str(bin_dir / "psql"), *connection, "--dbname", database, "-X", "-q"]
    run_as(None, [*roles, "-v", "ON_ERROR_STOP=1", "-c", ROLES_SQL], data_dir)


def start(settings: PostgresSettings) -> str:
    bin_dir = ensure_bin_dir()
    user = server_user()
    port = running_port(bin_dir, settings, user)
    if port is not None:
        return PostgresSettings(port=port, data_dir=settings.data_dir).url
    if port_accepts(settings.port):
        raise ServerError(f"Port {settings.port} on 127.0.0.1 is in use by another program.")
    prepare_data_dir(settings, user)
    init_cluster(bin_dir, settings, user)
    write_local_config(settings, user)
    started = run_as(
        user,
        [str(bin_dir / "pg_ctl"), "start", "--pgdata", str(settings.cluster_dir),
         "--log", str(settings.log_file), "--wait", "--timeout", str(pg_ctl_timeout_s)],
        settings.data_dir, check=False,
    )  # fmt: skip
    if started.returncode != 0:
        raise ServerError(
            f"PostgreSQL did not start:\n{started.stdout}{started.stderr}"
            f"{log_tail(settings.log_file)}"
        )
    ensure_database(bin_dir, settings.port, settings.data_dir)
    return settings.url


def stop(settings: PostgresSettings) -> bool:
    """Stop the server (fast shutdown); False when none was running."""
    bin_dir = find_bin_dir()
    if bin_dir is None or not settings.cluster_dir.is_dir():
        return False
    user = server_user()
    if running_port(bin_dir, settings, user) is None:
        return False
    pg_ctl = [str(bin_dir / "pg_ctl"), "stop", "--pgdata", str(settings.cluster_dir), "--wait"]
    timeout = ["--timeout", str(pg_ctl_timeout_s)]
    stopped = run_as(user, [*pg_ctl, *timeout, "--mode", "fast"], settings.data_dir, check=False)
    if stopped.returncode != 0:
        run_as(user, [*pg_ctl, *timeout, "--mode", "immediate"], settings.data_dir)
    return True


def print_roles(url: str) -> None:
    """The ledger's role URLs (trust authentication: no password on this local server)."""
    for role, use in ((owner_role, "creates the store"), (writer_role, "ledger run/ingest"),
                      (reader_role, "ledger api")):  # fmt: skip
        print(f"  {use}: {url.replace(f'//{superuser}@', f'//{role}@', 1)}", file=sys.stderr)


def main(argv: list[str]) -> int:
    usage = "usage: deploy/local/postgres start|stop|status"
    if len(argv) != 1 or argv[0] not in {"start", "stop", "status"}:
        print(usage, file=sys.stderr)
        return 2
    try:
        settings = settings_from_env()
        if argv[0] == "start":
            began = time.monotonic()
            url = start(settings)
            elapsed_s = time.monotonic() - began
            print(f"PostgreSQL answers on {url} ({elapsed_s:.1f} s)", file=sys.stderr)
            print_roles(url)
            print(url)
            return 0
        if argv[0] == "stop":
            was_running = stop(settings)
            message = "PostgreSQL stopped." if was_running else "PostgreSQL was not running."
            print(message, file=sys.stderr)
            return 0
        bin_dir = find_bin_dir() if settings.cluster_dir.is_dir() else None
        port = None if bin_dir is None else running_port(bin_dir, settings, server_user())
        if port is None:
            print(f"PostgreSQL is not running (data: {settings.data_dir}).")
            return 3
        running = PostgresSettings(port=port, data_dir=settings.data_dir)
        print(f"PostgreSQL is running on {running.url} (data: {settings.data_dir}).")
        return 0
    except ServerError as error:
        print(error, file=sys.stderr)
        return 1
