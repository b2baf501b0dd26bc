"""EasyList and EasyPrivacy evaluated offline with ``braveblock`` (Brave's adblock-rust engine).

braveblock (MIT) bundles snapshots of both lists (version 202205241325, 24 May 2022). The lists
themselves are by The EasyList authors, dual-licensed GPLv3 / CC BY-SA 3.0 (easylist.to); the
project does not redistribute them, it uses the copies inside the installed package.
"""

from __future__ import annotations

from functools import cache

import braveblock

EASYLIST = "easylist"
EASYPRIVACY = "easyprivacy"
# Any site other than the endpoint's own: the device's requests are third-party to every page.
_CONTEXT = "https://harness.invalid/"
# The device's requests are API calls, not page resources: adblock's "other" type.
_REQUEST_TYPE = "other"


@cache
def _engine(list_name: str) -> braveblock.Adblocker:
    return braveblock.Adblocker(
        include_easylist=list_name == EASYLIST,
        include_easyprivacy=list_name == EASYPRIVACY,
    )


def filter_hits(name: str, paths: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Which of EasyList / EasyPrivacy block ``https://NAME/`` or ``https://NAME<path>``.

    ``paths`` are request paths the endpoint is known to receive; TLS hides them from a
    capture, and some rules (EasyPrivacy's ``||amazon.com/1/events/``) only match with a path.
    """
    urls = [f"https://{name}/"] + [f"https://{name}{path}" for path in paths]
    return tuple(
        list_name
        for list_name in (EASYLIST, EASYPRIVACY)
        if any(
            _engine(list_name).check_network_urls(url=url, source_url=_CONTEXT, request_type=_REQUEST_TYPE)
            for url in urls
        )
    )
