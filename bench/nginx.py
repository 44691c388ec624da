"""nginx as the reference router: a weighted ``split_clients`` over upstream groups.

The config lives in a temporary prefix directory (pid, logs and temp paths
inside it), so nginx runs without root as whoever runs the benchmark:
``nginx -p PREFIX -c nginx.conf -e error.log`` with ``daemon off``; it is
stopped by the master's pid.

What makes it a fair anchor for a one-process Python gateway:

- ``worker_processes 1``: one event loop, like one gateway process;
- ``split_clients`` on ``$http_x_user_id``: a hash of the unit id per request
  picks the variant, the same work as the gateway's assignment;
- ``keepalive`` upstream connections (HTTP/1.1, ``Connection ""``): no connect
  per request, like a pooled client;
- ``access_log off``: nginx records nothing, which flatters it against a
  gateway that records every outcome, so the comparison is strict.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from abgate.processes import Child

__all__ = ["Upstream", "nginx_available", "nginx_config", "start_nginx"]


@dataclass(frozen=True)
class Upstream:
    """A variant: its name, its share in percent, and the worker URLs behind it."""

    name: str
    weight: float
    urls: Sequence[str]


def nginx_available() -> bool:
    """Whether an ``nginx`` binary is on PATH."""
    return shutil.which("nginx") is not None


def _hostport(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 80}"


def nginx_config(port: int, upstreams: Sequence[Upstream], *, keepalive: int = 64) -> str:
    """The whole ``nginx.conf``: listen on ``port``, split by X-User-ID across ``upstreams``."""
    total = sum(u.weight for u in upstreams)
    # split_clients needs percentages summing to <= 100; the last bucket takes the rest.
    buckets = [f"        {100 * u.weight / total:.2f}% {u.name};" for u in upstreams[:-1]]
    buckets.append(f"        * {upstreams[-1].name};")
    groups = "\n".join(
        f"    upstream {u.name} {{\n"
        + "".join(f"        server {_hostport(url)};\n" for url in u.urls)
        + f"        keepalive {keepalive};\n    }}"
        for u in upstreams
    )
    # Run as root, nginx would drop its workers to "nobody": keep the current user.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    bucket_lines = "\n".join(buckets)
    return f"""\
{user}worker_processes 1;
daemon off;
pid nginx.pid;
error_log error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    split_clients "${{http_x_user_id}}" $variant {{
{bucket_lines}
    }}
{groups}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://$variant;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def start_nginx(port: int, upstreams: Sequence[Upstream]) -> tuple[Child, Path]:
    """Write the config into a fresh prefix and start nginx; returns the child and the prefix.

    The caller stops the child (SIGTERM to the master stops the workers too) and
    removes the prefix.
    """
    prefix = Path(tempfile.mkdtemp(prefix="abgate-nginx-"))
    (prefix / "tmp").mkdir()
    (prefix / "nginx.conf").write_text(nginx_config(port, upstreams))
    argv = ["nginx", "-p", str(prefix), "-c", "nginx.conf", "-e", "error.log"]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Child("nginx", process, f"http://127.0.0.1:{port}"), prefix
