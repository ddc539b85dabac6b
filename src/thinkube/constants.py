"""Every label, annotation, finalizer and environment-variable key, in one place."""

from thinkube import __version__

GROUP = "thinkube.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Labels on every child object the operator creates.
LABEL_KIND = f"{GROUP}/kind"
LABEL_NAME = f"{GROUP}/name"
LABEL_ROLE = f"{GROUP}/role"
LABEL_RANK = f"{GROUP}/rank"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
LABEL_HOSTNAME = "kubernetes.io/hostname"  # well-known node label: one topology domain per node

FINALIZER = f"{GROUP}/finalizer"
ANNOTATION_PROGRESS = f"{GROUP}/last-handled-configuration"
ANNOTATION_CONFIG_HASH = f"{GROUP}/config-hash"  # on a server's pod template: a new config rolls the pods

# Environment of workload processes.
ENV_CACHE = "THINKUBE_CACHE"  # models, tokenizers, built binaries; default ~/.cache/thinkube
ENV_PVC_ROOT = "THINKUBE_PVC_ROOT"  # where the operator mounts PVCs inside pods
DEFAULT_PVC_ROOT = "/mnt/thinkube/pvc"
ENV_CONFIG = "THINKUBE_CONFIG"  # path of a stage's YAML/JSON config file
ENV_MASTER_ADDR = "MASTER_ADDR"
ENV_MASTER_PORT = "MASTER_PORT"
ENV_NNODES = "NNODES"
ENV_NODE_RANK = "NODE_RANK"
ENV_JOB_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
ENV_NPROC_PER_NODE = "NPROC_PER_NODE"
ENV_HF_HOME = "HF_HOME"  # Hugging Face downloads; the model-cache PVC when the operator has one
ENV_HF_TOKEN = "HF_TOKEN"  # from a Secret, never an argument
# The curation teacher's API key: from a Secret (CurationJob spec.teacher.apiKeySecret), never an
# argument, a config file or a log; `thinkube curate` reads it by this name (TeacherConfig.api_key_env).
ENV_TEACHER_API_KEY = "THINKUBE_TEACHER_API_KEY"
MODEL_CACHE_DIR = "/var/cache/thinkube/huggingface"  # the image's HF_HOME; the model-cache PVC mounts here
# Training progress: SFTRun rank 0 POSTs it to this URL (the control plane's
# .../sftruns/<name>/progress) with the pod's projected service-account token, read fresh
# from the file each time because the kubelet rotates it.
ENV_PROGRESS_URL = "THINKUBE_PROGRESS_URL"
ENV_PROGRESS_TOKEN_FILE = "THINKUBE_PROGRESS_TOKEN_FILE"
ENV_PROGRESS_EVERY_S = "THINKUBE_PROGRESS_EVERY_S"  # seconds between reports (default 10; the last step always)
PROGRESS_AUDIENCE = "thinkube-api"  # audience of that token: good for the control plane only
PROGRESS_TOKEN_DIR = "/var/run/secrets/thinkube/progress"  # where the token volume is mounted
PROGRESS_TOKEN_FILE = "token"  # the token's file name inside PROGRESS_TOKEN_DIR

# The control plane's client (`thinkube submit|runs|logs|results`, thinkube.client): where it is
# and the Kubernetes token to present; the token comes from the environment or a file, never an argument.
ENV_API_URL = "THINKUBE_API_URL"
ENV_API_TOKEN = "THINKUBE_API_TOKEN"
ENV_API_TOKEN_FILE = "THINKUBE_API_TOKEN_FILE"

# The workload image: the operator's default, and what tools that start pods use.
ENV_IMAGE = "THINKUBE_IMAGE"
ENV_IMAGE_PULL_POLICY = "THINKUBE_IMAGE_PULL_POLICY"  # of the pods tests start on a foreign cluster
DEFAULT_IMAGE = f"ghcr.io/thinkube/thinkube:{__version__}"  # the chart's image at its appVersion

# Test safety: the context name `hack/cluster` writes; anything else is a foreign cluster.
LOCAL_CONTEXT = "thinkube-local"
ENV_ALLOW_FOREIGN_CLUSTER = "THINKUBE_ALLOW_FOREIGN_CLUSTER"
ENV_REQUIRE_NODE = "THINKUBE_REQUIRE_NODE"  # 1: the node tier fails instead of skipping when no node starts

# Exit codes of workload processes (the operator retries EXIT_RETRIABLE, never EXIT_BAD_CONFIG).
EXIT_FAILED = 1  # a model endpoint or a stage failed; what finished is kept, a rerun resumes
EXIT_BAD_CONFIG = 2  # the input or configuration is wrong: retrying cannot help
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT)
EXIT_RETRIABLE = 75  # EX_TEMPFAIL: a distributed (NCCL/gloo) error or out of memory; retry resumes

# Operator: child objects and server-side apply.
LABEL_ATTEMPT = f"{GROUP}/attempt"  # SFTRun Jobs: which whole-gang attempt (0 = first run)
FIELD_MANAGER = "thinkube-operator"  # server-side apply field manager of every child
# Set by the Job controller on each pod of an Indexed Job; NODE_RANK comes from it.
ANNOTATION_JOB_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"  # set by the Job controller on its pods
CONFIG_MOUNT_DIR = "/etc/thinkube"  # where a stage's ConfigMap is mounted; ENV_CONFIG points inside
CONFIG_FILE = "config.json"
