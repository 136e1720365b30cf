"""`caddy validate` rejects each bad Caddyfile in bad_caddyfiles/ with a
message naming the file, the line and the reason, and accepts
Caddyfile.example. Every Caddyfile a user may copy (Caddyfile.example,
anything under examples/ and deploy/, the benchmark configs) is `caddy
fmt` clean, so Caddy does not warn "Caddyfile input is not formatted" when
it loads one.

Each bad file starts with
    # expect line N: <substring of the error message>
(or "line N,M": either line is a fair place to point at)
and may add
    # fix: <text> => <replacement>
which, applied once to the rest of the file, must make it validate: that
proves the file fails because of the one defect it is about."""

from __future__ import annotations

import difflib
import re
import subprocess
from pathlib import Path

import pytest

import helpers as h

BAD_DIR = Path(__file__).resolve().parent / "bad_caddyfiles"
BAD_FILES = sorted(BAD_DIR.glob("*.Caddyfile"))
HEADER = re.compile(r"^# expect line (\d+(?:,\d+)*): (.+?)\s*$")
FIX = re.compile(r"^# fix: (.+?) => (.*?)\s*$")
# The defects the spec names; each must be covered by at least one file.
REQUIRED_CASES = ("unknown_subdirective", "bad_buckets", "bad_metric_name", "bad_label_name",
                  "duplicate_route", "bad_cidr")


def _case(path: Path):
    lines = path.read_text().splitlines()
    m = HEADER.match(lines[0]) if lines else None
    assert m, "%s: first line must be '# expect line N: <message substring>'" % path.name
    fix = FIX.match(lines[1]) if len(lines) > 1 else None
    return [int(x) for x in m.group(1).split(",")], m.group(2), (fix.group(1), fix.group(2)) if fix else None


def test_required_cases_exist():
    names = [p.stem for p in BAD_FILES]
    missing = [c for c in REQUIRED_CASES if not any(n.startswith(c) for n in names)]
    assert not missing, "no bad Caddyfile for %s in %s" % (missing, BAD_DIR)


def test_example_validates(caddy_binary):
    p = h.validate(h.EXAMPLE)
    assert p.returncode == 0, "Caddyfile.example does not validate:\n%s" % p.stderr[-3000:]


def test_example_is_caddy_fmt_clean(caddy_binary):
    p = subprocess.run([str(h.CADDY), "fmt", str(h.EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    if p.stdout != h.EXAMPLE.read_text():
        diff = "".join(difflib.unified_diff(h.EXAMPLE.read_text().splitlines(True), p.stdout.splitlines(True),
                                            "Caddyfile.example", "caddy fmt"))
        pytest.fail("Caddyfile.example is not `caddy fmt` clean:\n" + diff[:3000], pytrace=False)


NOT_FORMATTED = "Caddyfile input is not formatted"


def _user_caddyfiles() -> list[Path]:
    """Every Caddyfile a user may copy besides Caddyfile.example (checked
    above)."""
    files = []
    for d in ("examples", "deploy", "bench/caddy"):
        files += sorted(p for p in (h.ROOT / d).rglob("*")
                        if p.is_file() and (p.name == "Caddyfile" or p.suffix == ".Caddyfile"))
    return files


USER_CADDYFILES = _user_caddyfiles()


def _fmt(path: Path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """`caddy fmt FILE` (the formatted text) and `caddy fmt --diff FILE`."""
    out = subprocess.run([str(h.CADDY), "fmt", str(path)], capture_output=True, timeout=60)
    diff = subprocess.run([str(h.CADDY), "fmt", "--diff", str(path)], capture_output=True,
                          text=True, timeout=60)
    return out, diff


def test_user_caddyfiles_found():
    assert any(p.parent.name == "caddy" for p in USER_CADDYFILES), USER_CADDYFILES


@pytest.mark.parametrize("path", USER_CADDYFILES, ids=[str(p.relative_to(h.ROOT)) for p in USER_CADDYFILES])
def test_caddyfile_is_fmt_clean(caddy_binary, path):
    out, diff = _fmt(path)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    assert out.stdout == path.read_bytes(), \
        "%s is not `caddy fmt` clean; `build/caddy fmt --diff %s` shows:\n%s" % (
            path.name, path, diff.stdout[-3000:])
    assert diff.returncode == 0, diff.stdout[-3000:] + diff.stderr[-2000:]


def test_example_loads_without_format_warning(caddy_binary):
    p = h.validate(h.EXAMPLE)
    assert p.returncode == 0, p.stderr[-3000:]
    assert NOT_FORMATTED not in p.stderr + p.stdout, p.stderr[-3000:]


def test_fmt_check_catches_a_misformatted_file(caddy_binary, tmp_path):
    """The check above can fail: the example with one line unindented and a
    blank line before the global block is reported, both by `caddy fmt` and
    by the warning at load time."""
    text = h.EXAMPLE.read_text().replace("\tauto_https off", "auto_https off", 1)
    text = text.replace("\n{\n", "\n\n{\n", 1)
    bad = tmp_path / "Caddyfile"
    bad.write_text(text)
    out, diff = _fmt(bad)
    assert out.stdout != bad.read_bytes()
    assert diff.returncode != 0 and "auto_https off" in diff.stdout
    p = h.validate(bad)
    assert NOT_FORMATTED in p.stderr + p.stdout, p.stderr[-3000:]


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_caddyfile_rejected(caddy_binary, path):
    lines, reason, _fix = _case(path)
    p = h.validate(path)
    err = h.log_messages(p.stderr + p.stdout)
    assert p.returncode != 0, "%s validated but must fail with %r" % (path.name, reason)
    assert reason in err, "%s: message lacks %r:\n%s" % (path.name, reason, err[-2000:])
    where = ["%s:%d" % (path, n) for n in lines]
    assert any(w in err for w in where), "%s: message names none of %s:\n%s" % (path.name, where, err[-2000:])
    assert "panic" not in err.lower(), err[-3000:]


@pytest.mark.parametrize("path", [p for p in BAD_FILES if _case(p)[2]],
                         ids=[p.stem for p in BAD_FILES if _case(p)[2]])
def test_bad_caddyfile_fixed_validates(caddy_binary, path, tmp_path):
    _line, _reason, (old, new) = _case(path)
    lines = path.read_text().split("\n")
    body = "\n".join(lines[2:])  # past the two header comments, which quote the fix
    assert old in body, "%s: fix text %r not found" % (path.name, old)
    fixed = tmp_path / path.name
    fixed.write_text("\n".join(lines[:2]) + "\n" + body.replace(old, new, 1))
    p = h.validate(fixed)
    assert p.returncode == 0, "%s with its one defect fixed still fails:\n%s" % (path.name, p.stderr[-2000:])
