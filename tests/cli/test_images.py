"""The Dockerfile builds what the chart and the operator run: the default `engine` target is the CUDA engine
(sm_90a, LORAX_CUDA=ON) because the CRD's default device is cuda, a CPU variant exists, every runtime image runs as
a non-root user, and the release version is one number (CMake project version = chart appVersion = the operator's
default engine image tag). scripts/bundle-libs, which the image stages use, gives a binary that runs with only the
bundled libraries. Docker itself is not available here, so the Dockerfile is read, not built."""
import os
import pathlib
import re
import subprocess

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]


def stages():
    """{stage name: (base image, [instructions])} of the Dockerfile."""
    out, cur = {}, None
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.I)
        if m:
            cur = m[2]
            out[cur] = (m[1], [])
        elif cur:
            out[cur][1].append(line)
    return out


def cmake_version():
    return re.search(r"project\(lorax VERSION ([0-9.]+)", (REPO / "CMakeLists.txt").read_text())[1]


def test_default_engine_image_is_cuda_and_non_root():
    s = stages()
    assert list(s)[-1] == "engine", "a plain `docker build .` must give the CUDA engine"
    base, steps = s["engine"]
    assert any("--from=build-cuda" in x for x in steps)
    build = " ".join(s["build-cuda"][1])
    assert "-DLORAX_CUDA=ON" in build and "cuda-nvcc" in build and "libcublas-dev" in build
    assert "set(CMAKE_CUDA_ARCHITECTURES 90a)" in (REPO / "CMakeLists.txt").read_text()
    assert "-DLORAX_CUDA=OFF" in " ".join(s["build"][1]) and any("--from=build " in x for x in s["engine-cpu"][1])
    for target in ["engine", "engine-cpu", "operator"]:
        users = [x for x in s[target][1] if x.upper().startswith("USER ")]
        assert users and users[-1].split()[1].split(":")[0] not in ("0", "root"), target


def test_one_version_for_images_chart_and_operator():
    chart = yaml.safe_load((REPO / "helm" / "lorax" / "Chart.yaml").read_text())
    assert chart["appVersion"] == cmake_version()
    defaults = (REPO / "operator" / "controllers" / "defaults.h").read_text()
    assert "lorax-engine:\") + LORAX_VERSION" in defaults and ":latest" not in defaults
    assert f"lorax-engine:{cmake_version()}" in (REPO / "Dockerfile").read_text()


def test_bundled_engine_runs_with_only_its_libraries(engine_bin, tmp_path):
    out = tmp_path / "bundle"
    subprocess.run([str(REPO / "scripts" / "bundle-libs"), str(engine_bin), str(out)], check=True, timeout=60)
    libs = {p.name for p in (out / "lib").iterdir()}
    assert any(n.startswith("libcpprest") for n in libs) and not any(n.startswith("libc.so") for n in libs)
    r = subprocess.run([str(out / "lorax-engine"), "--help"], capture_output=True, text=True, timeout=30,
                       env={"LD_LIBRARY_PATH": str(out / "lib"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "serve" in r.stdout + r.stderr
