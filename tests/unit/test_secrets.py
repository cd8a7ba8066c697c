"""No secret in the repository: every file git tracks (or would add) is scanned for private
keys, our API keys, passwords in URLs and AWS keys. Documented placeholders are allowed by
name, nothing else."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
# `nba issue-key` keys: "nba_" and 43 URL-safe base64 characters, mixed case (metric names
# such as nba_http_request_duration_seconds_bucket are lower case).
API_KEY = re.compile(
    r"(?<![A-Za-z0-9_-])nba_(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])"
    r"[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"
)
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:(?P<password>[^@\s'\"/]+)@")
AWS_ACCESS_KEY = re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
AWS_SECRET = re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}", re.IGNORECASE)
SECRET_FILES = re.compile(r"(^|/)(\.env|id_rsa|id_ed25519|api_keys\.yaml|.*\.pem|.*\.key)$")

# Passwords the documentation and the compose file use as placeholders.
PLACEHOLDER_PASSWORDS = {"password", "pw", "secret", "***", "...", "change-me"}


def _placeholder(password: str) -> bool:
    """A documented placeholder, or a reference to a variable (`${VAR}`, `{password}`)."""
    return password in PLACEHOLDER_PASSWORDS or password.startswith(("${", "$", "{"))


def findings(text: str) -> list[str]:
    """What in `text` looks like a secret."""
    found = [f"private key: {m.group(0)}" for m in PRIVATE_KEY.finditer(text)]
    found += [f"API key: {m.group(0)[:8]}..." for m in API_KEY.finditer(text)]
    found += [f"AWS key: {m.group(0)[:8]}..." for m in AWS_ACCESS_KEY.finditer(text)]
    found += [f"AWS secret: {m.group(0)[:30]}..." for m in AWS_SECRET.finditer(text)]
    found += [
        f"password in a URL: {m.group(0)}"
        for m in URL_PASSWORD.finditer(text)
        if not _placeholder(m.group("password"))
    ]
    return found


def repository_files() -> list[str]:
    """Tracked files, and untracked ones git would add (not ignored)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name})


def test_the_scanner_finds_what_it_looks_for() -> None:
    key = "nba_" + "Ab3" * 14 + "x"
    planted = "\n".join(
        [
            "-----BEGIN RSA " + "PRIVATE KEY-----",
            "-----BEGIN OPENSSH " + "PRIVATE KEY-----",
            f"X-API-Key: {key}",
            "postgresql://nba:" + "hunter2@db:5432/decisions",
            "redis://:" + "s3cr3t@cache:6379/0",
            "AKIA" + "IOSFODNN7EXAMPLE",
            "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ]
    )
    assert len(findings(planted)) == 7
    documented = "\n".join(
        [
            "postgresql://user:password@host:5432/db",
            "postgresql+psycopg://user:pw@host:5432/feast",
            "postgresql://postgres:${POSTGRES_PASSWORD:-change-me}@postgres:5432/decisions",
            'f"{scheme}://{user}:***@{host}"',
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "nba_http_request_duration_seconds_bucket_and_more_words_here",
            "nba_" + "x" * 43,
        ]
    )
    assert findings(documented) == []


def test_no_secret_is_committed() -> None:
    problems = []
    for name in repository_files():
        if SECRET_FILES.search(name):
            problems.append(f"{name}: a secrets file")
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        problems += [f"{name}: {found}" for found in findings(data.decode(errors="ignore"))]
    assert not problems, "secrets in the repository:\n" + "\n".join(problems)
