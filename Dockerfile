# syntax=docker/dockerfile:1
# lightrestore on a CUDA GPU: the package installed from its wheel (conf/ ships inside it
# as lightrestore/conf) on top of the official PyTorch runtime image, whose torch is kept.
#
# Base image: pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime = torch 2.5.1 (CUDA 12.4,
# cuDNN 9) on Python 3.11 (conda, /opt/conda/bin/python). The build stops if the image's
# Python is not PYTHON_VERSION or its torch is not TORCH_VERSION (e.g. after changing
# BASE_IMAGE with --build-arg: change all three together). tests/test_docker.py checks
# this file against pyproject.toml and .dockerignore.
#
# Build (from the repository root; needs network for PyPI):
#   docker build -t lightrestore .
#   docker build --build-arg EXTRAS=slurm -t lightrestore .   # optional extras, comma-separated
#
# Run (arguments are Hydra overrides for `python -m lightrestore`; no arguments prints --help):
#   mkdir -p logs
#   docker run --rm --gpus all --shm-size=8g \
#       -v /path/to/celeba:/data/celeba:ro \
#       -v "$PWD/logs:/workspace/logs" \
#       lightrestore experiment=ondemand_inpaint trainer=gpu \
#           data=folder data.source.root=/data/celeba/img_align_celeba
#   docker run --rm --gpus all -v "$PWD/logs:/workspace/logs" lightrestore experiment=ondemand_inpaint
#       (the embedded data set: no data folder needed)
#
# Runs go to /workspace/logs/<task_name>/runs/... (mount it to keep them). The container runs
# as uid 10001: the mounted logs folder must be writable by it (e.g. `chmod 777 logs`), or
# run as yourself with `--user "$(id -u):$(id -g)" -e HOME=/tmp`. wandb is offline by
# default; for online logging pass `-e WANDB_MODE=online -e WANDB_API_KEY=...`. --shm-size (or
# --ipc=host) is for DataLoader workers (data.num_workers).
#
# Other entry points: docker run --rm --gpus all -v "$PWD/logs:/workspace/logs" \
#   --entrypoint python lightrestore -m lightrestore.evaluate ckpt=logs/.../last.ckpt

ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
# Python of BASE_IMAGE (major.minor); must satisfy pyproject's requires-python
ARG PYTHON_VERSION=3.11
# torch of BASE_IMAGE; must satisfy pyproject's torch requirement; never reinstalled here
ARG TORCH_VERSION=2.5.1

# ---------------------------------------------------------------- builder: the wheel
FROM ${BASE_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src/ src/
COPY conf/ conf/
# hatchling (from [build-system]) in an isolated build env; the wheel must carry conf/
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && python -c "import glob, zipfile; (w,) = glob.glob('/wheels/lightrestore-*.whl'); assert 'lightrestore/conf/train.yaml' in zipfile.ZipFile(w).namelist(), w"

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG PYTHON_VERSION
ARG TORCH_VERSION
# optional extras of the package, comma-separated (see [project.optional-dependencies])
ARG EXTRAS=""

LABEL org.opencontainers.image.title="lightrestore" \
      org.opencontainers.image.description="Image restoration across degradation levels (PyTorch Lightning + Hydra)" \
      org.opencontainers.image.licenses="MIT" \
      python.version="${PYTHON_VERSION}" \
      torch.version="${TORCH_VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    WANDB_MODE=offline \
    MPLCONFIGDIR=/tmp/matplotlib \
    LIGHTRESTORE_ROOT=/workspace \
    HOME=/home/app

# the base image must be what the ARGs say
RUN python -c "import sys; v = '%d.%d' % sys.version_info[:2]; assert v == '${PYTHON_VERSION}', f'base image has Python {v}, PYTHON_VERSION is ${PYTHON_VERSION}'" \
 && python -c "import importlib.metadata as m; v = m.version('torch').split('+')[0]; assert v == '${TORCH_VERSION}', f'base image has torch {v}, TORCH_VERSION is ${TORCH_VERSION}'"

# a fixed non-root user; /workspace/logs is where runs go (mount a host folder there)
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/app --shell /bin/bash app \
 && mkdir -p /workspace/logs \
 && chown -R 10001:10001 /workspace \
 && mkdir -p /tmp/matplotlib && chmod 1777 /tmp/matplotlib

# The wheel, non-editable, with its dependencies from the wheel's metadata (= pyproject's
# [project].dependencies). The constraint pins torch to the version already installed, so
# pip keeps the image's CUDA torch: it never upgrades, replaces or adds one.
COPY --from=builder /wheels/ /tmp/wheels/
RUN set -eu; \
    python -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" > /tmp/torch-constraint.txt; \
    before="$(cat /tmp/torch-constraint.txt)"; \
    spec="$(ls /tmp/wheels/lightrestore-*.whl)"; \
    if [ -n "${EXTRAS}" ]; then spec="${spec}[${EXTRAS}]"; fi; \
    pip install --constraint /tmp/torch-constraint.txt "${spec}"; \
    after="$(python -c "import importlib.metadata as m; print('torch==' + m.version('torch'))")"; \
    test "${before}" = "${after}" || { echo "torch changed: ${before} -> ${after}" >&2; exit 1; }; \
    rm -rf /tmp/wheels /tmp/torch-constraint.txt; \
    python -c "from lightrestore.config import config_dir; d = config_dir(); assert 'site-packages' in str(d), d; print('configs:', d)"; \
    cfg="$(python -m lightrestore --cfg job experiment=ondemand_inpaint)"; \
    case "${cfg}" in *"task_name: ondemand_inpaint"*) ;; *) echo "${cfg}" >&2; exit 1 ;; esac

WORKDIR /workspace
USER 10001:10001

ENTRYPOINT ["python", "-m", "lightrestore"]
CMD ["--help"]
