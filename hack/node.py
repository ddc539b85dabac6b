"""A real node for the local control plane: containerd, kubelet, kube-proxy, CoreDNS, storage.

Used by `hack/cluster.py up --node`. containerd, runc and the CNI plugins come from Debian's
packages (installed here when missing); kubelet and kube-proxy are built from the same
k8s.io/kubernetes module as the control plane; CoreDNS from the Go module proxy; the pod
sandbox image is compiled from the module's own pause.c. Settings this kind of VM needs
(cgroup v1, no CAP_SYS_RESOURCE) are explained where they are set.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path

# Debian package -> a file it installs (hack/image.py's apt_install checks presence by it).
PACKAGES = {
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "iptables": "/usr/sbin/iptables",
    "conntrack": "/usr/sbin/conntrack",
}
COREDNS_VERSION = os.environ.get("THINKUBE_COREDNS_VERSION", "v1.15.0")
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
DNS_IP = "10.0.0.10"
DNS_PORT = 1053  # CoreDNS on the host; the kube-dns Service maps 53 to it
CNI_BIN = Path("/usr/lib/cni")
CNI_CONF = Path("/etc/cni/net.d/10-thinkube.conflist")
CNI_NETWORK = "thinkube"
# Node state outside the cache: containerd's root keeps imported images across `down`/`up`.
CONTAINERD_ROOT = Path("/var/lib/thinkube/containerd")
CONTAINERD_STATE = Path("/run/thinkube/containerd")
CONTAINERD_SOCKET = CONTAINERD_STATE / "containerd.sock"
KUBELET_ROOT = Path("/var/lib/thinkube/kubelet")
VOLUMES = Path("/var/lib/thinkube/volumes")
STORAGE_CLASS = "standard"


def node_name() -> str:
    return socket.gethostname().lower()


def node_ip() -> str:
    """The address pods reach the host on: the source address of the default route."""
    out = subprocess.run(["ip", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True).stdout.split()
    if "src" not in out:
        raise SystemExit("no default IPv4 route: the node needs an address pods can reach the host on")
    return out[out.index("src") + 1]


def preflight() -> None:
    """Root, and the kernel forwarding pod traffic (the packages: apt_install(PACKAGES))."""
    if os.geteuid() != 0:
        raise SystemExit("a node needs root (containerd, kubelet, iptables)")
    for key, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
        try:  # best effort: a container host may have set them read-only already
            Path("/proc/sys", key).write_text(value)
        except OSError:
            pass


# ---------------------------------------------------------------- binaries


def build_coredns(cache: Path) -> Path:
    out = cache / "coredns" / COREDNS_VERSION / "coredns"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(out.parent / "partial"))
    t0 = time.time()
    print(f"[node] building CoreDNS {COREDNS_VERSION} (cold: ~6 min on 2 cores)", flush=True)
    subprocess.run(
        ["go", "install", "-trimpath", "-ldflags", "-s -w", f"github.com/coredns/coredns@{COREDNS_VERSION}"],
        env=env,
        check=True,
    )
    (out.parent / "partial" / "coredns").rename(out)
    print(f"[node] CoreDNS built in {time.time() - t0:.0f}s", flush=True)
    return out


def pause_tar(cache: Path, k8s_version: str) -> Path:
    """The sandbox image as a `docker save` tar: the module's pause.c, static, as uid 65535."""
    out = cache / "k8s" / k8s_version / "pause.tar"
    if out.exists():
        return out
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    src = Path(modcache) / f"k8s.io/kubernetes@{k8s_version}" / "build/pause/linux/pause.c"
    binary = out.with_name("pause")
    subprocess.run(["gcc", "-Os", "-static", "-o", str(binary), str(src)], check=True)
    subprocess.run(["strip", str(binary)], check=True)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(binary), arcname="pause")
        info.uid = info.gid = 0
        info.mtime = 0
        with binary.open("rb") as f:
            tar.addfile(info, f)
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": [f"{diff_id}/layer.tar"]}]
    ).encode()
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        for name, data in ((f"{diff_id}/layer.tar", layer_bytes), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(out)
    return out


# ---------------------------------------------------------------- configuration files


def containerd_config(state: Path) -> Path:
    path = state / "containerd.toml"
    path.write_text(f"""version = 2
root = "{CONTAINERD_ROOT}"
state = "{CONTAINERD_STATE}"
[grpc]
  address = "{CONTAINERD_SOCKET}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # The VM lacks CAP_SYS_RESOURCE: runc cannot set a negative oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{CNI_CONF.parent}"
""")
    return path


def write_cni_config() -> None:
    CNI_CONF.parent.mkdir(parents=True, exist_ok=True)
    CNI_CONF.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": CNI_NETWORK,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "isGateway": True,
                        "ipMasq": True,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_CIDR}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                    # Accepts pod traffic in FORWARD even where a Docker daemon once set the policy to DROP.
                    {"type": "firewall"},
                ],
            },
            indent=2,
        )
    )


def kubelet_config(state: Path, pki: Path) -> Path:
    path = state / "kubelet.yaml"
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Only the API server (its kubelet client certificate) and authorized users reach the kubelet.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "cgroupDriver": "cgroupfs",  # no systemd here
        "failCgroupV1": False,  # the VM is cgroup v1; 1.36 refuses it unless told
        "failSwapOn": False,
        "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE for a negative value
        "clusterDNS": [DNS_IP],
        "clusterDomain": "cluster.local",
        # Images exist only locally (no registry): never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "serializeImagePulls": False,
        "maxPods": 60,
    }
    path.write_text(json.dumps(cfg, indent=2))
    return path


def kube_proxy_config(state: Path, kubeconfig: Path) -> Path:
    path = state / "kube-proxy.yaml"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "mode": "iptables",
                "clusterCIDR": CLUSTER_CIDR,
                "hostnameOverride": node_name(),
                "clientConnection": {"kubeconfig": str(kubeconfig)},
                "conntrack": {"maxPerCore": 0},  # leave the host's conntrack table size alone
            },
            indent=2,
        )
    )
    return path


def corefile(state: Path, kubeconfig: Path, ip: str) -> Path:
    path = state / "Corefile"
    path.write_text(f""".:{DNS_PORT} {{
    bind {ip}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
}}
""")
    return path


def cluster_objects(ip: str) -> list[dict]:
    """What the node needs in the API: DNS Service and endpoints, storage class, RBAC for its parts."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "clusterIP": DNS_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": DNS_PORT},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": DNS_PORT},
                ],
            },
        },
        # CoreDNS runs on the host, so the Service has no selector and these endpoints instead.
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-host",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "thinkube.dev-hack",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [
                {"name": "dns", "port": DNS_PORT, "protocol": "UDP"},
                {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP"},
            ],
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "thinkube.dev/hostpath",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
        # The API server's kubelet client: logs, exec, port-forward, metrics on the kubelet.
        _binding("kube-apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:kubelet-api-admin"),
        *_user_role(
            "coredns",
            "system:coredns",
            [
                {"apiGroups": [""], "resources": ["services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        ),
        *_user_role(
            "provisioner",
            "thinkube:provisioner",
            [
                {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["list", "watch", "create", "delete"]},
                {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["list", "watch"]},
            ],
        ),
    ]


def _binding(name: str, user: str, role: str) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"thinkube:{name}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def _user_role(name: str, user: str, rules: list[dict]) -> list[dict]:
    """A ClusterRole of just these rules, bound to one certificate's user."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"thinkube:{name}"},
        "rules": rules,
    }
    return [role, _binding(name, user, f"thinkube:{name}")]


# ---------------------------------------------------------------- teardown


def ctr(*args: str) -> list[str]:
    return ["ctr", "--address", str(CONTAINERD_SOCKET), "--connect-timeout", "5s", "-n", "k8s.io", *args]


def kill_containers() -> None:
    """Stop every container of the node; the kubelet is already gone, so nothing restarts them."""
    if not CONTAINERD_SOCKET.exists():
        return
    tasks = subprocess.run(ctr("tasks", "ls", "-q"), capture_output=True, text=True).stdout.split()
    for t in tasks:
        subprocess.run(ctr("tasks", "kill", "-a", "-s", "SIGKILL", t), capture_output=True)
    for t in tasks:
        for _ in range(20):
            if subprocess.run(ctr("tasks", "delete", t), capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
    ids = subprocess.run(ctr("containers", "ls", "-q"), capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(ctr("containers", "rm", *ids), capture_output=True)


def unmount_all() -> None:
    """Unmount what the kubelet and the runtime left (volumes, the kubelet's bind mount, netns)."""
    roots = (str(KUBELET_ROOT), str(CONTAINERD_STATE), "/run/netns/cni-", "/var/run/netns/cni-")
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout.split("\n")
    for target in sorted((m for m in mounts if m.startswith(roots)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
    for ns in Path("/run/netns").glob("cni-*"):
        ns.unlink(missing_ok=True)
    # host-local IPAM leases of pods that no longer exist
    shutil.rmtree(Path("/var/lib/cni/networks") / CNI_NETWORK, ignore_errors=True)
