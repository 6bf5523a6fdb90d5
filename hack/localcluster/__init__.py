"""A real local Kubernetes control plane and S3 server for kubetune's tests and demo.

No container engine runs on our machines, so kind and k3d are out. This package builds the
upstream binaries from pinned Go modules (see ``hack/tools/*/go.mod``), caches them, and runs
them as plain processes on 127.0.0.1: etcd, kube-apiserver (TLS, RBAC + Node authorizers, token
auth, service-account signing), kube-controller-manager, kube-scheduler, kwok for simulated GPU
nodes, and MinIO for S3. Each cluster owns its ports and directory, so several can run at once.
"""

from localcluster.cluster import Cluster, ClusterInfo
from localcluster.s3server import S3Info, S3Server
from localcluster.tools import Tool, ensure_tools

__all__ = ["Cluster", "ClusterInfo", "S3Info", "S3Server", "Tool", "ensure_tools"]
