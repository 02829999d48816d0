"""The Dockerfile agrees with pyproject.toml and .dockerignore, and the wheel it installs
works without the source tree (the image itself cannot be built here: no container engine).

Part 1 reads the Dockerfile; part 2 builds the wheel with hatchling as the builder stage
does, and uses it from an unzipped copy (a non-editable install) in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# --------------------------------------------------------------------------- parsing


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction: comments dropped, ``\\``
    continuations joined (comment lines inside a continuation are skipped, as Docker does)."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return out


def header_comment(text: str) -> str:
    """The comment block at the top of the Dockerfile."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def stages(instrs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (index 0: the global ARGs before the first FROM)."""
    groups: list[list[tuple[str, str]]] = [[]]
    for ins in instrs:
        if ins[0] == "FROM":
            groups.append([])
        groups[-1].append(ins)
    return groups


def arg_defaults(instrs: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for keyword, args in instrs:
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            out[name.strip()] = value.strip().strip("\"'")
    return out


def substitute(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def copy_sources(args: str) -> list[str]:
    """The context paths a COPY/ADD reads (none for ``--from=<stage>``)."""
    words = shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    if any(f.startswith("--from") for f in flags):
        return []
    paths = [w for w in words if not w.startswith("--")]
    if paths and paths[0].startswith("["):  # JSON form
        paths = json.loads(args[args.index("[") :])
    return paths[:-1]


def dockerignore_patterns(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore syntax (Go filepath.Match plus ``**``), anchored at the root."""
    pattern = os.path.normpath(pattern.lstrip("/"))
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` (relative to the context root) out of the context: the
    last pattern that matches the path or one of its parent folders decides (``!`` = keep)."""
    parts = Path(os.path.normpath(path)).parts
    candidates = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    ignored = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        regex = _pattern_regex(pattern[1:] if keep else pattern)
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not keep
    return ignored


TEXT = DOCKERFILE.read_text()
INSTRS = instructions(TEXT)
STAGES = stages(INSTRS)
GLOBAL_ARGS = arg_defaults(STAGES[0])
FINAL = STAGES[-1]
FINAL_ARGS = {**GLOBAL_ARGS, **arg_defaults(FINAL)}
RUNS = [args for keyword, args in INSTRS if keyword == "RUN"]
FINAL_RUNS = [args for keyword, args in FINAL if keyword == "RUN"]
IGNORE = dockerignore_patterns(DOCKERIGNORE.read_text())
BASE_TAG = re.compile(
    r"pytorch/pytorch:(?P<torch>\d+\.\d+\.\d+)-cuda(?P<cuda>\d+\.\d+)-cudnn(?P<cudnn>\d+)-runtime"
)


def base_images() -> list[str]:
    """The image each stage starts from, ARGs substituted (stage names excluded)."""
    names: set[str] = set()
    images = []
    for stage in STAGES[1:]:
        words = stage[0][1].split()
        image = substitute(words[0], GLOBAL_ARGS)
        if image not in names:
            images.append(image)
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])
    return images


def python_version() -> Version:
    declared = FINAL_ARGS.get("PYTHON_VERSION")
    assert declared, "the Dockerfile declares no ARG PYTHON_VERSION=<major.minor>"
    return Version(declared)


def pip_installs() -> list[str]:
    """Every ``pip install ...`` command in the RUN lines (shell-split at ; && ||)."""
    cmds = []
    for run in RUNS:
        for part in re.split(r"&&|\|\||;", run):
            if re.search(r"\bpip3?\s+install\b", part):
                cmds.append(part.strip())
    return cmds


# --------------------------------------------------------------------------- part 1


def test_base_image_is_a_pytorch_cuda_runtime_whose_torch_meets_pyproject():
    images = base_images()
    assert images, "no FROM"
    torch_req = next(
        Requirement(r)
        for r in PYPROJECT["project"]["dependencies"]
        if Requirement(r).name == "torch"
    )
    for image in images:
        m = BASE_TAG.fullmatch(image)
        assert m, (
            f"stage image {image!r} is not a pytorch/pytorch:<torch>-cuda<x>-cudnn<y>-runtime tag"
        )
        assert Version(m["torch"]) in torch_req.specifier, (
            f"{image} has torch {m['torch']}, pyproject needs {torch_req}"
        )
        assert FINAL_ARGS.get("TORCH_VERSION") == m["torch"], (
            f"ARG TORCH_VERSION={FINAL_ARGS.get('TORCH_VERSION')} but {image} has torch {m['torch']}"
        )


def test_declared_python_fits_requires_python_and_ruff_target():
    version = python_version()
    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert version in requires, (
        f"image Python {version} does not satisfy requires-python {requires}"
    )
    target = PYPROJECT["tool"]["ruff"]["target-version"]  # e.g. py310: the oldest Python linted for
    m = re.fullmatch(r"py(\d)(\d+)", target)
    assert m, target
    assert version.release[:2] >= (int(m[1]), int(m[2])), (
        f"image Python {version} is older than ruff's target-version {target}"
    )
    # the header comment states it, the image is labelled with it, and the build checks it
    assert f"Python {version}" in header_comment(TEXT), "the header comment must state the Python"
    labels = " ".join(args for keyword, args in FINAL if keyword == "LABEL")
    assert "python.version=" in labels and "PYTHON_VERSION" in labels
    check = re.compile(r"sys\.version_info.*==\s*['\"]\$\{?PYTHON_VERSION\b")
    assert any(check.search(r) for r in FINAL_RUNS), (
        "the runtime stage must assert at build time that the image's Python is PYTHON_VERSION"
    )


def test_extras_exist_in_pyproject():
    extras = [e.strip() for e in FINAL_ARGS.get("EXTRAS", "").split(",") if e.strip()]
    optional = PYPROJECT["project"].get("optional-dependencies", {})
    for extra in extras:
        assert extra in optional, f"EXTRAS names {extra!r}, not in [project.optional-dependencies]"
    # a literal `.whl[extras]` anywhere must name existing extras too
    for cmd in pip_installs():
        for group in re.findall(r"\.whl\[([^\]$]+)\]", cmd):
            for extra in group.split(","):
                assert extra.strip() in optional, f"{cmd!r} installs unknown extra {extra!r}"


def test_entrypoint_runs_the_package_as_a_non_root_user():
    entry = [args for keyword, args in FINAL if keyword == "ENTRYPOINT"]
    assert entry, "the runtime stage has no ENTRYPOINT"
    assert json.loads(entry[-1]) == ["python", "-m", "lightrestore"]
    users = [args for keyword, args in FINAL if keyword == "USER"]
    assert users, "the runtime stage has no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {users[-1]!r}: use a fixed numeric uid"
    assert int(user) != 0 and user != "root"
    workdir = [args for keyword, args in FINAL if keyword == "WORKDIR"]
    assert workdir, "the runtime stage has no WORKDIR"
    logs = f"{workdir[-1].rstrip('/')}/logs"
    assert any(logs in r and "chown" in r and user in r for r in FINAL_RUNS), (
        f"{logs} must be created and owned by uid {user}"
    )


def test_environment():
    env: dict[str, str] = {}
    for keyword, args in FINAL:
        if keyword == "ENV":
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                env[name] = value
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("WANDB_MODE") == "offline"
    mpl = env.get("MPLCONFIGDIR", "")
    assert mpl.startswith("/tmp/") or mpl.startswith(env.get("HOME", "//")), mpl


def test_the_wheel_is_installed_non_editable_without_touching_torch():
    installs = pip_installs()
    assert installs, "no pip install"
    for cmd in installs:
        words = shlex.split(cmd)
        assert "-e" not in words and not any(w.startswith("--editable") for w in words), cmd
        assert not re.search(r"(^|\s)(-U|--upgrade|--force-reinstall)(\s|$)", cmd), cmd
        assert not re.search(r"(^|\s)[\"']?torch([=<>~!\[\s\"']|$)", cmd), (
            f"{cmd!r} installs torch: the image's CUDA torch must stay"
        )
    final_installs = [
        c for r in FINAL_RUNS for c in re.split(r"&&|\|\||;", r) if "pip install" in c
    ]
    wheel = [c for c in final_installs if ".whl" in c or "${spec}" in c or "$spec" in c]
    assert wheel, "the runtime stage does not pip install the built wheel"
    for cmd in wheel:
        # dependencies come from the wheel's metadata (checked against pyproject in part 2) ...
        assert "--no-deps" not in cmd, "with --no-deps the image would miss the dependencies"
        # ... under a constraint pinning torch to the version already in the image
        m = re.search(r"(?:--constraint|-c)[ =](\S+)", cmd)
        assert m, f"{cmd!r} has no --constraint pinning torch"
        constraint = m[1]
        assert any(
            "torch==" in r and "version('torch')" in r and f"> {constraint}" in r
            for r in FINAL_RUNS
        ), f"{constraint} must be written from the installed torch's version (torch==...)"
    # and the build stops if torch changed anyway
    same = re.compile(r'test\s+"\$\{?before\}?"\s+=\s+"\$\{?after\}?"\s*\|\|.*exit 1')
    assert any(same.search(r) for r in FINAL_RUNS), "no check that torch is unchanged after install"
    # the builder stage builds the wheel from the sources
    builds = [r for r in RUNS if re.search(r"pip3? wheel|python3? -m build|hatchling build", r)]
    assert builds, "no stage builds the wheel"
    assert all("-e " not in b for b in builds)


def test_every_copied_path_exists_and_is_in_the_build_context():
    copied = []
    for keyword, args in INSTRS:
        if keyword in ("COPY", "ADD"):
            copied += copy_sources(args)
    assert copied, "the Dockerfile copies nothing from the context"
    for src in copied:
        assert not any(ch in src for ch in "*?["), f"COPY {src}: name paths, not globs"
        path = REPO / src
        assert path.exists(), f"COPY {src}: not in the repository"
        assert not is_ignored(src, IGNORE), f"COPY {src}: excluded by .dockerignore"
        if path.is_dir():  # every source file and config under it reaches the build too
            for f in path.rglob("*"):
                if f.is_file() and f.suffix in {".py", ".yaml", ".yml", ".typed"}:
                    rel = f.relative_to(REPO).as_posix()
                    if "__pycache__" not in rel:
                        assert not is_ignored(rel, IGNORE), f"{rel}: excluded by .dockerignore"
    # what hatchling needs to build the wheel is copied into the builder stage
    builder_copies = [p.rstrip("/") for k, a in STAGES[1] if k == "COPY" for p in copy_sources(a)]
    needed = {"pyproject.toml", "src", "conf", PYPROJECT["project"].get("readme", "README.md")}
    license_ = PYPROJECT["project"].get("license")
    license_file = license_.get("file") if isinstance(license_, dict) else None
    if license_file:
        needed.add(license_file)
    assert needed <= set(builder_copies), f"the builder stage misses {needed - set(builder_copies)}"


@pytest.mark.parametrize(
    "path",
    [".git", ".venv", "logs", "outputs", "multirun", "wandb", ".pytest_cache", ".whl", "build",
     "dist", "src/lightrestore/__pycache__/config.cpython-311.pyc", "run/last.ckpt",
     "logs/x/runs/y/checkpoints/last.ckpt", "lightrestore-0.1.0-py3-none-any.whl"],
)  # fmt: skip
def test_dockerignore_leaves_out_local_state(path):
    assert is_ignored(path, IGNORE), f"{path} would be sent to the Docker build"


def test_dockerignore_matcher_follows_docker_rules():
    """The matcher above: anchored at the root, ``**/`` at any depth, the last match wins."""
    assert is_ignored("data/x.png", ["data"]) and not is_ignored("src/pkg/data/x.py", ["data"])
    assert is_ignored("a/b/__pycache__/m.pyc", ["**/__pycache__"])
    assert is_ignored("m.pyc", ["**/*.py[cod]"]) and not is_ignored("m.py", ["**/*.py[cod]"])
    assert not is_ignored("README.md", ["*.md", "!README.md"])
    assert is_ignored("README.md", ["!README.md", "*.md"])


# --------------------------------------------------------------------------- part 2


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline with hatchling (as the builder stage does, but without a
    build-isolation download)."""
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    wheels = list(out.glob("lightrestore-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """The wheel unzipped: what ``pip install <wheel>`` puts in site-packages."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def test_wheel_ships_every_config(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert "lightrestore/conf/train.yaml" in names
    configs = sorted((REPO / "conf").rglob("*.yaml"))
    assert len(configs) > 10
    missing = [
        p.relative_to(REPO).as_posix()
        for p in configs
        if f"lightrestore/{p.relative_to(REPO).as_posix()}" not in names
    ]
    assert not missing, f"not in the wheel: {missing}"
    assert "lightrestore/__main__.py" in names and "lightrestore/config.py" in names


def test_wheel_metadata_carries_pyproject_dependencies(wheel):
    """The image installs the dependencies from the wheel's metadata: they must be exactly
    [project].dependencies (and the extras' lists)."""
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = z.read(meta_name).decode()
    requires = [Requirement(line.split(":", 1)[1].strip())
                for line in meta.splitlines() if line.startswith("Requires-Dist:")]  # fmt: skip
    base = {(r.name, str(r.specifier)) for r in requires if r.marker is None}
    expected = {(Requirement(d).name, str(Requirement(d).specifier))
                for d in PYPROJECT["project"]["dependencies"]}  # fmt: skip
    assert base == expected
    for extra, deps in PYPROJECT["project"].get("optional-dependencies", {}).items():
        got = {r.name for r in requires if r.marker and r.marker.evaluate({"extra": extra})}
        assert got == {Requirement(d).name for d in deps}, extra


def _run_outside_the_tree(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PYTHONPATH": str(site),
        "PATH": "/usr/bin:/bin",
        "HYDRA_FULL_ERROR": "1",
        "WANDB_MODE": "offline",
        "HOME": str(cwd),
        "MPLCONFIGDIR": str(cwd / "mpl"),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_unzipped_wheel_finds_its_configs(site, tmp_path):
    probe = _run_outside_the_tree(
        site,
        tmp_path,
        "-c",
        "import lightrestore.config as c; print(c.__file__); print(c.config_dir())",
    )
    assert probe.returncode == 0, probe.stderr
    module_file, conf = probe.stdout.split()
    assert Path(module_file).is_relative_to(site), module_file
    assert Path(conf).is_relative_to(site) and (Path(conf) / "train.yaml").is_file(), conf
    assert Path(conf) == site / "lightrestore" / "conf"


def test_unzipped_wheel_composes_an_experiment(site, tmp_path):
    """What the image's build checks and `docker run img experiment=ondemand_inpaint` starts
    with: Hydra composes the experiment from the packaged configs."""
    # `python -m lightrestore`, after recording which lightrestore it runs
    main = (
        "import runpy, sys, lightrestore; print('module:', lightrestore.__file__); "
        "sys.argv = ['lightrestore', *sys.argv[1:]]; "
        "runpy.run_module('lightrestore', run_name='__main__', alter_sys=True)"
    )
    proc = _run_outside_the_tree(
        site, tmp_path, "-c", main, "--cfg", "job", "experiment=ondemand_inpaint"
    )
    assert proc.returncode == 0, proc.stderr
    module = re.search(r"^module: (.+)$", proc.stdout, re.M)
    assert module and Path(module[1]).is_relative_to(site), proc.stdout[:500]
    assert re.search(r"^task_name: ondemand_inpaint$", proc.stdout, re.M), proc.stdout[:2000]
    assert not (tmp_path / "logs").exists() and not (tmp_path / "outputs").exists()
