#!/usr/bin/env python3
"""A local PersistentVolume provisioner for the single-node cluster (`hack/cluster.py up --node`).

Each pending claim of the `standard` class gets a host folder and a PersistentVolume bound
to it; released volumes are deleted with their folder. Folders are world-writable because
workload pods run as arbitrary non-root users and hostPath volumes ignore fsGroup.
Standard library and kubectl only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROVISIONER = "thinkube.dev/hostpath"
ANNOTATION = "pv.kubernetes.io/provisioned-by"


def main(kubectl: str, kubeconfig: str, root: Path, storage_class: str) -> None:
    def k(*args: str, input: str | None = None) -> str:
        return subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout

    root.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            for pvc in json.loads(k("get", "pvc", "-A", "-o", "json"))["items"]:
                spec, meta = pvc["spec"], pvc["metadata"]
                if (
                    spec.get("storageClassName") != storage_class
                    or spec.get("volumeName")
                    or pvc.get("status", {}).get("phase") != "Pending"
                    or meta.get("deletionTimestamp")
                ):
                    continue
                name = f"pvc-{meta['uid']}"
                folder = root / name
                folder.mkdir(exist_ok=True)
                folder.chmod(0o777)
                pv = {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name, "annotations": {ANNOTATION: PROVISIONER}},
                    "spec": {
                        "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                        "accessModes": spec["accessModes"],
                        "storageClassName": storage_class,
                        "persistentVolumeReclaimPolicy": "Delete",
                        "hostPath": {"path": str(folder), "type": "Directory"},
                        "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
                    },
                }
                k("create", "-f", "-", input=json.dumps(pv))
                print(f"provisioned {name} for {meta['namespace']}/{meta['name']}", flush=True)
            for pv in json.loads(k("get", "pv", "-o", "json"))["items"]:
                ours = pv["metadata"].get("annotations", {}).get(ANNOTATION) == PROVISIONER
                if ours and pv.get("status", {}).get("phase") in ("Released", "Failed"):
                    shutil.rmtree(root / pv["metadata"]["name"], ignore_errors=True)
                    k("delete", "pv", pv["metadata"]["name"], "--wait=false")
                    print(f"deleted {pv['metadata']['name']}", flush=True)
        except (subprocess.SubprocessError, json.JSONDecodeError, KeyError) as e:
            print(f"retrying after: {e}", flush=True)
        time.sleep(2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4])
