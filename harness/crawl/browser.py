"""How the crawl starts Debian's Chromium through Playwright: flags, profiles, versions.

No browser is ever downloaded: Playwright drives the system's ``/usr/bin/chromium``. The flags
keep a crawl to the pages it was asked for (no background updates, sync or QUIC side traffic),
so a closed network sees only what the pages do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, ToolMissing
from harness.files import atomic_write_text, private_dir

CLOSED_NETWORK_FLAGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_PERSONA = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_persona(name: str) -> str:
    """``name`` if it can name a profile folder (letters, digits, ``._-``), else a one-line error."""
    if not _PERSONA.fullmatch(name):
        raise HarnessError(f"persona {name!r}: use 1-64 letters, digits, '.', '_' or '-' (it names a folder)")
    return name


def profile_dir(profiles: Path, persona: str) -> Path:
    """The persona's own persistent profile, ``profiles/<persona>/``, created private (0700)."""
    private_dir(profiles)
    return private_dir(profiles / check_persona(persona))


def set_third_party_cookies(profile: Path, allow: bool) -> None:
    """Set the profile's third-party cookie preference before Chromium starts on it.

    Chromium blocks third-party cookies unless told otherwise, so without this no bidder sees its
    cookie on a publisher's page and no identifier sync can happen; the study's browsers allowed
    them. The rest of the profile's preferences are kept as they are.
    """
    path = profile / "Default" / "Preferences"
    prefs: dict[str, Any] = {}
    if path.is_file():
        try:
            prefs = json.loads(path.read_bytes())
        except (OSError, ValueError):
            raise HarnessError(f"{path}: not Chromium preferences (JSON); is this a browser profile?") from None
    section = prefs.setdefault("profile", {})
    section["cookie_controls_mode"] = 0 if allow else 1
    section["block_third_party_cookies"] = not allow
    private_dir(path.parent)
    atomic_write_text(path, json.dumps(prefs))


def chromium_args(headless: bool, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Chromium's command line: the closed-network flags, ``--headless`` when headless, and
    ``--no-sandbox`` only when running as root (Chromium refuses its sandbox there)."""
    args = list(CLOSED_NETWORK_FLAGS)
    if headless:
        args.insert(0, "--headless")
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args + list(extra)


def launch_options(
    profile: Path, executable: str, headless: bool = True, extra: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Keyword arguments of ``launch_persistent_context`` for one persona's profile."""
    if not os.access(executable, os.X_OK):
        raise ToolMissing(f"{executable}: Chromium is not installed (apt-get install chromium)")
    return {
        "user_data_dir": str(profile),
        "executable_path": executable,
        "headless": headless,
        "args": chromium_args(headless, extra),
        "viewport": {"width": 1280, "height": 900},
        "accept_downloads": False,
    }


def require_display(env: dict[str, str] | None = None) -> None:
    """A headed browser needs a display: one line saying so when there is none."""
    env = dict(os.environ) if env is None else env
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        raise HarnessError(
            "no display: `harness crawl login` opens a visible browser; run it in a desktop session "
            "(or with X forwarding, ssh -X), where DISPLAY or WAYLAND_DISPLAY is set"
        )


def playwright_version() -> str:
    from importlib.metadata import version

    return version("playwright")


def require_playwright() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        raise ToolMissing("Playwright for Python is not installed (pip install playwright)") from None
