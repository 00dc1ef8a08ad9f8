"""``beacon golem devnet``: a whole Golem network on this machine, offline.

One directory holds it all, and ``devnet.json`` in it records every process by PID:

* the router (:mod:`beacon.golem.router`, the stand-in for ya-sb-router) as the central-net hub;
* anvil as the hoodi chain, with tGLM (:mod:`beacon.golem.chain`);
* one requestor ``yagna`` (funded with 1000 tGLM) and one provider ``yagna`` per region, each provider
  with the project's provider agent + exe-unit (:mod:`beacon.golem.provider`, stand-ins for ya-provider,
  exe-unit and the VM runtime) publishing offers with the region's properties;
* a loopback HTTP server for the stand-in VM image (yapapi checks an image URL before it demands).

Inside a loopback-only network namespace when root and ``ip`` are available (the requestor's API and the
chain are then reached through :mod:`beacon.golem.bridge`), otherwise on 127.0.0.1 with yagna's proxy
variables pointed at a closed loopback port. Stopped by PID (yagna with SIGINT); ``down`` leaves nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from beacon.golem.chain import HOODI_CHAIN_ID, TGLM_ADDRESS, Chain, ChainError, find_anvil

REGIONS = ("US", "EU", "ASIA")
FUNDS_GLM = Decimal(1000)
PAYMENT_NETWORK = "hoodi"
PAYMENT_DRIVER = "erc20"
STATE_FILE = "devnet.json"
IMAGE_NAME = "beacon-golem-vm.gvmi"
IMAGE_BYTES = b"Beacon devnet stand-in VM image: the exe-unit stand-in runs beacon.executors.golem_vm\n"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 12.0
# Prices per region (GLM): start, per second of duration, per CPU second (yagna's linear pricing).
PRICES = {"US": (0.010, 0.0010, 0.0), "EU": (0.012, 0.0012, 0.0), "ASIA": (0.008, 0.0008, 0.0)}


class DevnetError(RuntimeError):
    pass


@dataclass
class Node:
    name: str
    role: str
    region: str | None
    dir: str
    api_url: str
    """The API as seen from the host (through the bridge in a namespace)."""
    inner_api_url: str
    gsb_url: str
    pid: int = 0
    app_key: str = ""
    node_id: str = ""
    agent_pid: int = 0


@dataclass
class Devnet:
    dir: str
    isolation: str
    netns: str | None
    router_port: int
    chain_url: str
    inner_chain_url: str
    image_url: str
    image_hash: str
    gftp_dir: str
    requestor: Node
    providers: dict[str, Node]
    pids: dict[str, int] = field(default_factory=dict)
    """Every process of the devnet, by role (``router``, ``anvil``, ``image``, ``bridge``, nodes, agents)."""
    timings: dict[str, float] = field(default_factory=dict)
    started_at: float = 0.0

    # --- state -----------------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path) -> Devnet:
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            raise DevnetError(f"no devnet in {directory} (no {STATE_FILE}): run `beacon golem devnet up`")
        raw = json.loads(path.read_text())
        raw["requestor"] = Node(**raw["requestor"])
        raw["providers"] = {region: Node(**node) for region, node in raw["providers"].items()}
        return cls(**raw)

    def save(self) -> None:
        path = Path(self.dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)

    # --- facts for the requestor side ----------------------------------------------------------------
    @property
    def nodes(self) -> list[Node]:
        return [self.requestor, *self.providers.values()]

    def region_providers(self) -> dict[str, list[str]]:
        """``GOLEM_REGION_PROVIDERS``: each region's allowlist is its provider's node id."""
        return {region: [node.node_id] for region, node in self.providers.items()}

    def images(self, models: Iterable[str]) -> dict[str, str]:
        """``GOLEM_IMAGES``: every model maps to the stand-in image (``HASH@URL``)."""
        return {model: f"{self.image_hash}@{self.image_url}" for model in models}

    def env(self) -> dict[str, str]:
        """What a runner needs to use this devnet as its Golem backend."""
        return {
            "YAGNA_URL": self.requestor.api_url,
            "YAGNA_APPKEY": self.requestor.app_key,
            "GOLEM_NETWORK": PAYMENT_NETWORK,
            "GOLEM_PAYMENT_DRIVER": PAYMENT_DRIVER,
            "GOLEM_REGION_PROVIDERS": json.dumps(self.region_providers()),
            "PATH": f"{self.gftp_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def chain(self) -> Chain:
        return Chain(self.chain_url)

    def set_fault(self, region: str, mode: str | None) -> None:
        """Make the region's provider misbehave on its next activities (see :mod:`beacon.golem.provider`)."""
        path = Path(self.providers[region].dir) / "fault"
        if mode:
            path.write_text(mode)
        else:
            path.unlink(missing_ok=True)

    def alive(self) -> dict[str, bool]:
        return {role: _pid_alive(pid) for role, pid in self.pids.items()}


# --- processes ---------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive: it only waits for its parent to reap it.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return False
    return True


def netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _free_port(low: int = 0, high: int = 0) -> int:
    """A free loopback port; in [low, high] when given (the router's must have at most 4 digits)."""
    if not low:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    start = low + (os.getpid() * 7919 + time.monotonic_ns()) % (high - low)
    for offset in range(high - low):
        port = low + (start - low + offset) % (high - low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise DevnetError(f"no free port between {low} and {high}")


class Launcher:
    """Starts the devnet's processes (inside the namespace when there is one) and records their PIDs."""

    def __init__(self, root: Path, netns: str | None) -> None:
        self.root = root
        self.netns = netns
        self.pids: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def spawn(self, role: str, argv: list[str], env: dict[str, str], *, inside: bool = True) -> int:
        log = open(self.root / "logs" / f"{role}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            (self.prefix() if inside else []) + argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.root,
        )
        log.close()
        self.pids[role] = proc.pid
        self.procs[role] = proc
        return proc.pid

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 20.0) -> str:
        done = subprocess.run(
            self.prefix() + argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise DevnetError(
                f"{' '.join(argv[:4])} failed ({done.returncode}): {done.stderr.strip()[-400:]}"
            )
        return done.stdout


def _wait(what: str, probe: Callable[[], bool], timeout: float, launcher: Launcher, role: str | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if role is not None:
            proc = launcher.procs.get(role)
            if proc is not None and proc.poll() is not None:
                log = launcher.root / "logs" / f"{role}.log"
                tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
                raise DevnetError(f"{what} exited with {proc.returncode} while starting: {tail}")
        with contextlib.suppress(Exception):
            if probe():
                return
        time.sleep(0.1)
    raise DevnetError(f"{what} did not come up within {timeout:.0f} s")


def _http_answers(url: str) -> bool:
    httpx.get(url, timeout=1.0, trust_env=False)
    return True


def yagna_binary() -> str | None:
    beside = Path(sys.executable).with_name("yagna")
    if beside.is_file():
        return str(beside)
    return shutil.which("yagna")


def _payments_toml(chain_url: str) -> str:
    return f"""# The devnet's payment config: yagna's hoodi chain, served by anvil; no wrapper/multi/lock contracts.
[engine]
process-interval = 2
process-interval-after-send = 2
process-interval-after-error = 3
process-interval-after-no-gas-or-token-start = 3
process-interval-after-no-gas-or-token-max = 10
process-interval-after-no-gas-or-token-increase = 1.5
report-alive-interval = 5
gather-interval = 5
gather-at-start = true
automatic-recover = false
ignore-deadlines = false

[chain.hoodi]
chain-name = "Hoodi"
chain-id = {HOODI_CHAIN_ID}
currency-symbol = "tETH"
priority-fee = 0.000001
max-fee-per-gas = 20.0
transaction-timeout = 100
token = {{ address = "{TGLM_ADDRESS}", symbol = "tGLM" }}
confirmation-blocks = 0
block-explorer-url = "http://127.0.0.1/"
external-source-check-interval = 300

[[chain.hoodi.rpc-endpoints]]
names = "anvil"
endpoints = "{chain_url}"
priority = 0
max-timeout-ms = 5000
verify-interval-secs = 60
allowed-head-behind-secs = 120
"""


def _base_env(dead_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YAGNA_", "GSB_", "YA_"))}
    dead = f"http://127.0.0.1:{dead_port}"
    env.update(
        HTTP_PROXY=dead,
        HTTPS_PROXY=dead,
        http_proxy=dead,
        https_proxy=dead,
        ALL_PROXY=dead,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def _yagna_env(
    base: dict[str, str], node_dir: Path, api: str, gsb: str, router_port: int, dead_port: int
) -> dict[str, str]:
    env = dict(base)
    env.update(
        YAGNA_DATADIR=str(node_dir),
        YAGNA_LOG_DIR=str(node_dir / "logs"),
        YAGNA_API_URL=api,
        GSB_URL=gsb,
        YA_NET_TYPE="central",
        CENTRAL_NET_HOST=f"127.0.0.1:{router_port}",
        YAGNA_METRICS_URL=f"http://127.0.0.1:{dead_port}/",
        MEAN_CYCLIC_BCAST_INTERVAL="3s",
        MEAN_CYCLIC_UNSUBSCRIBES_INTERVAL="3s",
        ERC20_HOODI_REQUIRED_CONFIRMATIONS="0",
        PAYMENT_CYCLE_DEFAULT_INTERVAL="10s",
        PAYMENT_CYCLE_DEFAULT_EXTRA_PAY_TIME="5s",
        RUST_LOG="info",
    )
    return env


def up(
    directory: str | Path,
    *,
    regions: Iterable[str] = REGIONS,
    isolation: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> Devnet:
    """Start a devnet in ``directory`` (created; must not hold a running devnet). Stops what it started on failure."""
    started = time.monotonic()
    note = progress or (lambda _msg: None)
    root = Path(directory).resolve()
    if (root / STATE_FILE).exists() and any(Devnet.load(root).alive().values()):
        raise DevnetError(f"a devnet is already running in {root}: `beacon golem devnet down --dir {root}`")
    yagna = yagna_binary()
    if yagna is None:
        raise DevnetError("no yagna binary: install golem-node (requirements of `make setup`)")
    anvil = find_anvil()
    if anvil is None:
        raise DevnetError(
            "no anvil: `make setup` installs npm @foundry-rs/anvil-linux-amd64 into .npm/ where npm exists"
        )
    if isolation == "auto":
        isolation = "netns" if netns_available() else "loopback"
    if isolation not in ("netns", "loopback"):
        raise DevnetError(f"unknown isolation {isolation!r} (auto, netns, loopback)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    netns = None
    if isolation == "netns":
        netns = f"beacon-devnet-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
        for argv in (
            ["ip", "netns", "add", netns],
            ["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise DevnetError(f"{' '.join(argv)}: {done.stderr.strip()}")
    launcher = Launcher(root, netns)
    timings: dict[str, float] = {}
    try:
        devnet = _start(root, yagna, anvil, list(regions), isolation, netns, launcher, timings, note)
    except BaseException:
        _stop_pids(launcher.pids, netns)
        raise
    devnet.timings["total"] = round(time.monotonic() - started, 2)
    devnet.save()
    return devnet


def _start(
    root: Path,
    yagna: str,
    anvil: str,
    regions: list[str],
    isolation: str,
    netns: str | None,
    launcher: Launcher,
    timings: dict[str, float],
    note: Callable[[str], None],
) -> Devnet:
    t0 = time.monotonic()

    def mark(step: str) -> None:
        timings[step] = round(time.monotonic() - t0, 2)
        note(f"{step} ({timings[step]:.1f} s)")

    inside = netns is not None

    def port(fixed: int, low: int = 0, high: int = 0) -> int:
        """A fixed port inside the namespace (it is ours alone), a free one on the shared loopback."""
        return fixed if inside else _free_port(low, high)

    dead_port = port(9)  # nothing listens there: yagna's proxy and metrics go nowhere
    router_port = port(7464, 1024, 9999)  # yagna's CENTRAL_NET_HOST parser takes at most 4 digits
    chain_port = port(8545)
    image_port = _free_port()  # the image server runs on the host side (the requestor's yapapi reads it)
    base = _base_env(dead_port)
    python = sys.executable

    # router
    launcher.spawn("router", [python, "-m", "beacon.golem.router", "--port", str(router_port)], base)
    _wait("the router", lambda: _tcp_answers(router_port, netns), 10, launcher, "router")
    mark("router")

    # chain
    inner_chain_url = f"http://127.0.0.1:{chain_port}"
    launcher.spawn(
        "anvil",
        [
            anvil,
            "--host",
            "127.0.0.1",
            "--port",
            str(chain_port),
            "--chain-id",
            str(HOODI_CHAIN_ID),
            "--block-time",
            "1",
            "--silent",
        ],
        base,
    )
    _wait("anvil", lambda: _tcp_answers(chain_port, netns), 15, launcher, "anvil")

    # nodes
    nodes: list[Node] = []
    api_ports = {"requestor": port(7475)}
    for index, region in enumerate(regions):
        api_ports[f"provider-{region.lower()}"] = port(7481 + index)
    for name, api_port in api_ports.items():
        node_dir = root / name
        (node_dir / "logs").mkdir(parents=True, exist_ok=True)
        (node_dir / "config-payments.toml").write_text(_payments_toml(inner_chain_url))
        node_region = None if name == "requestor" else name.removeprefix("provider-").upper()
        inner_api = f"http://127.0.0.1:{api_port}"
        nodes.append(
            Node(
                name=name,
                role="requestor" if node_region is None else "provider",
                region=node_region,
                dir=str(node_dir),
                api_url=inner_api,
                inner_api_url=inner_api,
                gsb_url=f"unix:{node_dir / 'gsb.sock'}",
            )
        )
    envs = {
        n.name: _yagna_env(base, Path(n.dir), n.inner_api_url, n.gsb_url, router_port, dead_port)
        for n in nodes
    }
    for node in nodes:
        node.pid = launcher.spawn(
            node.name, [yagna, "service", "run", "--disable-metrics-push"], envs[node.name]
        )
    bridge_ports: dict[int, int] = {}
    if inside:
        bridge_ports = {_free_port(): chain_port, _free_port(): api_ports["requestor"]}
        mapping = [f"{outer}:{inner}" for outer, inner in bridge_ports.items()]
        launcher.spawn(
            "bridge",
            [python, "-m", "beacon.golem.bridge", "--netns", str(netns), *mapping],
            base,
            inside=False,
        )
    chain_url = inner_chain_url
    for outer, inner in bridge_ports.items():
        if inner == chain_port:
            chain_url = f"http://127.0.0.1:{outer}"
        else:
            nodes[0].api_url = f"http://127.0.0.1:{outer}"
    chain = Chain(chain_url)
    _wait("anvil's RPC", lambda: chain.chain_id() == HOODI_CHAIN_ID, 15, launcher, "anvil")
    chain.deploy_tglm()
    mark("chain")

    for node in nodes:
        _wait(
            f"yagna {node.name}",
            functools.partial(_tcp_answers, _port_of(node.inner_api_url), netns),
            20,
            launcher,
            node.name,
        )
    mark("yagna daemons")
    for node in nodes:
        env = envs[node.name]
        node.app_key = _app_key(launcher, yagna, env)
        ident = json.loads(launcher.run([yagna, "id", "show", "--json"], env))
        node.node_id = str((ident.get("Ok") or ident)["nodeId"]).lower()
    mark("identities")
    requestor, providers = nodes[0], nodes[1:]
    chain.fund(requestor.node_id, FUNDS_GLM)
    launcher.run(
        [yagna, "payment", "init", "--sender", "--driver", PAYMENT_DRIVER, "--network", PAYMENT_NETWORK],
        envs[requestor.name],
    )
    for node in providers:
        launcher.run(
            [
                yagna,
                "payment",
                "init",
                "--receiver",
                "--driver",
                PAYMENT_DRIVER,
                "--network",
                PAYMENT_NETWORK,
            ],
            envs[node.name],
        )
    mark("payments")

    # the stand-in image and gftp for the requestor side (both on the host)
    images = root / "images"
    images.mkdir(exist_ok=True)
    (images / IMAGE_NAME).write_bytes(IMAGE_BYTES)
    image_hash = hashlib.sha3_224(IMAGE_BYTES).hexdigest()
    launcher.spawn(
        "image",
        [python, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(images), str(image_port)],
        base,
        inside=False,
    )
    gftp_dir = root / "bin"
    gftp_dir.mkdir(exist_ok=True)
    gftp = gftp_dir / "gftp"
    gftp.write_text(f'#!/bin/sh\nexec {python} -m beacon.golem.gftp "$@"\n')
    gftp.chmod(0o755)

    # provider agents
    for node in providers:
        region = str(node.region)
        start, per_second, per_cpu = PRICES.get(region, PRICES["EU"])
        node.agent_pid = launcher.spawn(
            f"agent-{region.lower()}",
            [
                python,
                "-m",
                "beacon.golem.provider",
                "--api-url",
                node.inner_api_url,
                "--app-key",
                node.app_key,
                "--gsb-url",
                node.gsb_url,
                "--node-id",
                node.node_id,
                "--region",
                region,
                "--name",
                f"beacon-devnet-{region.lower()}",
                "--dir",
                node.dir,
                "--price-start",
                str(start),
                "--price-per-second",
                str(per_second),
                "--price-per-cpu-second",
                str(per_cpu),
            ],
            base,
        )
    for node in providers:
        ready = Path(node.dir) / "agent.ready"
        _wait(
            f"the provider agent of {node.region}",
            ready.exists,
            20,
            launcher,
            f"agent-{str(node.region).lower()}",
        )
    _wait(
        "the image server",
        lambda: _http_answers(f"http://127.0.0.1:{image_port}/{IMAGE_NAME}"),
        10,
        launcher,
        "image",
    )
    mark("provider agents")
    chain.close()
    return Devnet(
        dir=str(root),
        isolation=isolation,
        netns=netns,
        router_port=router_port,
        chain_url=chain_url,
        inner_chain_url=inner_chain_url,
        image_url=f"http://127.0.0.1:{image_port}/{IMAGE_NAME}",
        image_hash=image_hash,
        gftp_dir=str(gftp_dir),
        requestor=requestor,
        providers={str(n.region): n for n in providers},
        pids=dict(launcher.pids),
        timings=timings,
        started_at=time.time(),
    )


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _tcp_answers(port: int, netns: str | None) -> bool:
    if netns is None:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-c",
            f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=0.5)",
        ],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _app_key(launcher: Launcher, yagna: str, env: dict[str, str]) -> str:
    out = launcher.run([yagna, "app-key", "create", "beacon"], env).strip()
    return out.splitlines()[-1].strip().strip('"')


def _stop_pids(pids: dict[str, int], netns: str | None, timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop every process by PID: agents and helpers with SIGTERM, yagna with SIGINT (it ignores SIGTERM
    for a long while); SIGKILL whatever is left at the deadline. Returns the roles that needed SIGKILL."""
    for role, pid in pids.items():
        if _pid_alive(pid):
            sig = signal.SIGINT if role == "requestor" or role.startswith("provider-") else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_pid_alive(pid) for pid in pids.values()):
        _reap(pids)
        time.sleep(0.1)
    killed = []
    for role, pid in pids.items():
        if _pid_alive(pid):
            killed.append(role)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    _reap(pids)
    if netns:
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
    return killed


def _reap(pids: dict[str, int]) -> None:
    for pid in pids.values():
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def down(directory: str | Path) -> dict[str, Any]:
    """Stop the devnet in ``directory`` by its PIDs; its files stay (logs) but the state says stopped."""
    devnet = Devnet.load(directory)
    started = time.monotonic()
    killed = _stop_pids(devnet.pids, devnet.netns)
    left = [role for role, pid in devnet.pids.items() if _pid_alive(pid)]
    devnet.pids = {}
    devnet.save()
    return {"stopped_in_s": round(time.monotonic() - started, 2), "killed": killed, "left": left}


def status(directory: str | Path) -> dict[str, Any]:
    devnet = Devnet.load(directory)
    return {
        "dir": devnet.dir,
        "isolation": devnet.isolation,
        "netns": devnet.netns,
        "processes": devnet.alive(),
        "requestor": {"api_url": devnet.requestor.api_url, "node_id": devnet.requestor.node_id},
        "providers": {
            r: {"node_id": n.node_id, "name": f"beacon-devnet-{r.lower()}"}
            for r, n in devnet.providers.items()
        },
        "chain_url": devnet.chain_url,
        "timings": devnet.timings,
    }


def processes_under(directory: str | Path) -> list[str]:
    """Live processes whose command line names ``directory`` (yagna data dirs, agents, their children)."""
    root = str(Path(directory).resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if root in argv and _pid_alive(int(entry.name)):
                found.append(f"{entry.name}: {argv[:160]}")
    return found


def glm_balance(devnet: Devnet, address: str) -> Decimal:
    chain = devnet.chain()
    try:
        return chain.glm_balance(address)
    finally:
        chain.close()


__all__ = [
    "ChainError",
    "Devnet",
    "DevnetError",
    "Node",
    "down",
    "glm_balance",
    "processes_under",
    "status",
    "up",
]
